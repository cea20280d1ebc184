"""A client-only install (the base dependencies, no torch) imports and classifies.

A fresh virtual environment gets ``pip install`` of this project without extras, exactly
what a service that only calls the classifier installs; then the library and the
``distilbert-classify`` command run there against the test server.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import reference_logits, tokenizer

ROOT = Path(__file__).resolve().parents[2]
SINGLE = "single_label_classification"
TEXTS = ["I love this movie", "The plot made no sense at all.", "An average film."]

SCRIPT = """
import importlib.util, json, sys
assert importlib.util.find_spec("torch") is None, "torch must not be installed"
from distilbert_client import Classifier
with Classifier(sys.argv[1], sys.argv[2]) as classifier:
    results = classifier.classify(json.loads(sys.argv[3]))
assert "torch" not in sys.modules
print(json.dumps([[r.label, list(r.logits)] for r in results]))
"""


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory) -> Path:
    """A new venv with ``pip install <project>``, from a copy holding only what the wheel needs."""
    root = tmp_path_factory.mktemp("client_install")
    source = root / "source"  # a copy: building in the work tree would write into its build/ folder
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for folder in ("client", "serving"):  # the client imports the package's contract (no torch)
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    venv = root / "venv"
    env = clean_env()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env, timeout=120)
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(source)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return venv


def clean_env() -> dict[str, str]:
    """This environment minus what would leak the test venv into the fresh one."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


def test_client_only_install_has_no_torch_and_classifies_like_in_process(server, tiny_checkpoints, client_venv):
    checkpoint = tiny_checkpoints[SINGLE]

    done = subprocess.run(
        [str(client_venv / "bin" / "python"), "-c", SCRIPT, server.grpc_url, str(checkpoint), json.dumps(TEXTS)],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=120,
    )

    assert done.returncode == 0, done.stderr[-4000:]
    served = json.loads(done.stdout.splitlines()[-1])
    expected = reference_logits(checkpoint, tokenizer(checkpoint)(TEXTS, truncation=True)["input_ids"])
    assert np.abs(np.array([logits for _, logits in served]) - expected).max() <= 1e-4


def test_client_only_install_provides_the_distilbert_classify_command(server, tiny_checkpoints, client_venv):
    done = subprocess.run(
        [str(client_venv / "bin" / "distilbert-classify"), "--url", server.grpc_url],
        input="I love this movie\n",
        capture_output=True,
        text=True,
        env={**clean_env(), "DISTILBERT_TOKENIZER": str(tiny_checkpoints[SINGLE])},
        timeout=120,
    )

    assert done.returncode == 0, done.stderr[-4000:]
    record = json.loads(done.stdout)
    assert record["text"] == "I love this movie" and record["label"] in ("negative", "neutral", "positive")
