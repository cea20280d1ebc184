"""Small helpers the test tiers share: in-process references and raw Triton calls."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient

# Test model name per problem type in the integration tests' repository (tests/integration/conftest.py).
# The single-label one carries the product's model name.
MODELS = {
    "single_label_classification": "distilbert_classifier",
    "multi_label_classification": "classifier_multi",
    "regression": "classifier_regression",
}


@cache
def reference_model(checkpoint: Path):
    """The checkpoint run in-process by transformers, fp32: the answer the server must give."""
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(checkpoint).eval()


@cache
def tokenizer(checkpoint: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(checkpoint)


def reference_logits(checkpoint: Path, ids: list[list[int]]) -> np.ndarray:
    """In-process logits, one text at a time (no padding at all)."""
    import torch

    model = reference_model(checkpoint)
    with torch.inference_mode():
        return np.concatenate([model(input_ids=torch.tensor([row])).logits.numpy() for row in ids])


def token_ids(checkpoint: Path, texts: list[str]) -> list[list[int]]:
    return tokenizer(checkpoint)(texts, truncation=True)["input_ids"]


def infer_ids(
    client: grpcclient.InferenceServerClient,
    model: str,
    ids: np.ndarray,
    mask: np.ndarray | None = None,
    outputs: tuple[str, ...] = ("logits", "probabilities"),
    dtype: str = "INT64",
):
    """One request of ``[rows, length]`` ids (and optionally a mask) to a token model."""
    inputs = [grpcclient.InferInput("input_ids", list(ids.shape), dtype)]
    inputs[0].set_data_from_numpy(ids)
    if mask is not None:
        inputs.append(grpcclient.InferInput("attention_mask", list(mask.shape), "INT64"))
        inputs[1].set_data_from_numpy(mask)
    return client.infer(model, inputs, outputs=[grpcclient.InferRequestedOutput(name) for name in outputs])
