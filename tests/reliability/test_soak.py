"""The soak (``pytest -m slow``): half an hour of mixed traffic on the default export, one stub killed.

The same run as ``python benchmarks/soak.py --checkpoint checkpoints/full-single --minutes 30``; the figures
in docs/RELIABILITY.md §6 come from it. ``SOAK_MINUTES`` shortens it (a trial run), never for the figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from distilbert_serving.checkpoints import write_checkpoint

PROJECT = Path(__file__).resolve().parents[2]
FULL = PROJECT / "checkpoints" / "full-single"
SOAK = PROJECT / "benchmarks" / "soak.py"
MINUTES = float(os.environ.get("SOAK_MINUTES", "30"))


@pytest.mark.slow
@pytest.mark.timeout(int(MINUTES * 60) + 1800)
def test_half_an_hour_of_mixed_traffic_and_a_killed_stub_leave_no_wrong_answer_no_crash_and_flat_memory(tmp_path):
    checkpoint = FULL if (FULL / "model.safetensors").exists() else None
    if checkpoint is None:
        checkpoint = write_checkpoint("full", "single_label_classification", tmp_path / "full-single")
    figures = tmp_path / "soak.json"
    kill_at = min(420.0, MINUTES * 60 / 4)
    # The tool as users run it: a script, in a process of its own.
    code = subprocess.call(
        [
            sys.executable,
            str(SOAK),
            "--checkpoint",
            str(checkpoint),
            "--minutes",
            str(MINUTES),
            "--kill-at-s",
            str(kill_at),
            "--json",
            str(figures),
        ]
    )
    report = json.loads(figures.read_text())
    assert report["wrong"] == 0, report["phases"]
    assert report["unexpected_restarts"] == 0, report["launcher_events"]
    assert report["unexpected_errors"] == 0, report["phases"]
    assert report["memory"]["growth_pct"] is not None and report["memory"]["growth_pct"] < 5.0, report["memory"]
    assert report["ready_at_end"]
    # Every phase was served, and every malformed request refused as malformed.
    for phase in ("steady", "text", "malformed", "bursts"):
        assert report["phases"][phase]["outcomes"].get("ok", 0) > 0, report["phases"][phase]
    assert code == 0
