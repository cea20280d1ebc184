"""Fixtures shared by every tier: offline checkpoints built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from distilbert_serving.checkpoints import PROBLEM_TYPES, checkpoint_name, write_checkpoint


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """problem_type → folder of a tiny DistilBERT checkpoint with the real tokenizer."""
    root = tmp_path_factory.mktemp("checkpoints")
    return {pt: write_checkpoint("tiny", pt, root / checkpoint_name("tiny", pt)) for pt in PROBLEM_TYPES}
