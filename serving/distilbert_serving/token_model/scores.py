"""Scores from logits, per ``problem_type`` (``contract.PROBLEM_TYPES``)."""

from __future__ import annotations

import numpy as np

from ..contract import MULTI_LABEL, REGRESSION, SINGLE_LABEL


def scores_from_logits(logits: np.ndarray, problem_type: str) -> np.ndarray:
    """Softmax over labels, independent sigmoids, or the raw regression value."""
    logits = logits.astype(np.float32, copy=False)
    if problem_type == SINGLE_LABEL:
        shifted = logits - logits.max(axis=-1, keepdims=True)
        exp = np.exp(shifted)
        return exp / exp.sum(axis=-1, keepdims=True)
    if problem_type == MULTI_LABEL:
        # Written with exp(-|x|) so that neither branch overflows for large |x|.
        positive = 1.0 / (1.0 + np.exp(-np.abs(logits)))
        return np.where(logits >= 0, positive, 1.0 - positive).astype(np.float32)
    if problem_type == REGRESSION:
        return logits.copy()
    raise ValueError(f"unknown problem_type {problem_type!r}")
