"""What a score means, per ``config.problem_type`` of the checkpoint."""

from __future__ import annotations

import numpy as np

SINGLE_LABEL = "single_label_classification"
MULTI_LABEL = "multi_label_classification"
REGRESSION = "regression"
PROBLEM_TYPES = (SINGLE_LABEL, MULTI_LABEL, REGRESSION)


def resolve_problem_type(problem_type: str | None, num_labels: int) -> str:
    """The checkpoint's problem type; when unset, transformers' own inference rule.

    At training time transformers picks regression for one label and otherwise looks at
    the label dtype, which a server never sees; an unset multi-label checkpoint is
    therefore served as single-label (softmax). Set ``problem_type`` to be explicit.
    """
    if problem_type is None:
        return REGRESSION if num_labels == 1 else SINGLE_LABEL
    if problem_type not in PROBLEM_TYPES:
        raise ValueError(f"unknown problem_type {problem_type!r}; expected one of {', '.join(PROBLEM_TYPES)}")
    return problem_type


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
