"""The pod's liveness probe (docker/liveness_probe.py), run as the container runs it, against a real server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROBE = Path(__file__).resolve().parents[2] / "docker" / "liveness_probe.py"


def probe(server, model: str, state: Path) -> subprocess.CompletedProcess:
    ports = ["--http-port", str(server.options.http_port), "--metrics-port", str(server.options.metrics_port)]
    command = [sys.executable, str(PROBE), "--model", model, "--input", "input_ids", *ports, "--state", str(state)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_liveness_probe_passes_when_the_model_answers_a_real_inference(server, tmp_path):
    result = probe(server, "distilbert_classifier", tmp_path / "state.json")
    assert result.returncode == 0, result.stdout + result.stderr


def test_liveness_probe_fails_when_the_model_answers_with_an_error(server, tmp_path):
    result = probe(server, "no_such_model", tmp_path / "state.json")
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.startswith("probe: ")
