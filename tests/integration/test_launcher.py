"""The launcher command starts the real server on the given ports and stops it cleanly."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from distilbert_serving.backends import TEXT_BACKEND, TOKEN_BACKEND
from distilbert_serving.launch import free_port

LAUNCHER = Path(__file__).resolve().parents[2] / "build" / "launch.py"


def read_until(process: subprocess.Popen, marker: str, timeout_s: float) -> list[str]:
    lines, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if marker in line:
            return lines
    raise AssertionError(f"no {marker!r} within {timeout_s}s; got:\n{''.join(lines)}")


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_launcher_serves_on_given_ports_and_stops_cleanly_on_signal(model_repository, stop_signal):
    grpc, http, metrics = free_port(), free_port(), free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            str(LAUNCHER),
            "--model-repository",
            str(model_repository),
            "--grpc-port",
            str(grpc),
            "--http-port",
            str(http),
            "--metrics-port",
            str(metrics),
            "--exit-timeout-s",
            "5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = read_until(process, "ready:", timeout_s=240)
        assert f"gRPC 127.0.0.1:{grpc}" in lines[-1] and f"127.0.0.1:{http}" in lines[-1]
        with urllib.request.urlopen(f"http://127.0.0.1:{http}/v2/health/ready", timeout=5) as response:
            assert response.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=5) as response:
            assert b"nv_inference_count" in response.read()

        process.send_signal(stop_signal)
        output = process.communicate(timeout=60)[0]
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "tritonserver stopped (exit code 0)" in output
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{http}/v2/health/live", timeout=2)


def test_launcher_reports_a_repository_that_fails_to_load(tmp_path):
    broken = tmp_path / "repository" / "broken" / "1"
    broken.mkdir(parents=True)
    (broken.parent / "config.pbtxt").write_text('backend: "python"\nmax_batch_size: 1\n')
    (broken / "model.py").write_text("raise RuntimeError('this model cannot load')\n")
    result = subprocess.run(
        [
            sys.executable,
            str(LAUNCHER),
            "--model-repository",
            str(broken.parents[1]),
            "--grpc-port",
            str(free_port()),
            "--http-port",
            str(free_port()),
            "--metrics-port",
            str(free_port()),
            "--startup-timeout-s",
            "120",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 1
    assert "this model cannot load" in result.stdout + result.stderr


def test_an_exported_repository_is_configuration_and_weights_that_name_the_packages_backends(model_repository):
    # The launcher test above serves this repository in a fresh server: its code is the installed package.
    assert not list(model_repository.rglob("*.py")), "export must write no code into a model repository"
    configs = {path.parent.name: path.read_text() for path in model_repository.glob("*/config.pbtxt")}
    for name, text in configs.items():
        backend = TEXT_BACKEND if name == "distilbert_text" else TOKEN_BACKEND
        assert f'backend: "{backend}"' in text, name
