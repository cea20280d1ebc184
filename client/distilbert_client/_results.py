"""Typed, immutable results: one ``Classification`` per input text."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from distilbert_serving.contract import MULTI_LABEL, REGRESSION


class Scores(Mapping[str, float]):
    """Label → score, read-only, in the model's label order; hashable and picklable."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, float] | Iterable[tuple[str, float]]) -> None:
        self._items = dict(items)

    def __getitem__(self, label: str) -> float:
        return self._items[label]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(tuple(self._items.items()))

    def __repr__(self) -> str:
        return f"Scores({self._items!r})"


@dataclass(frozen=True)
class LabelScore:
    """One label and its score."""

    label: str
    score: float


@dataclass(frozen=True)
class Classification:
    """The model's answer for one text (or text pair).

    A score is a softmax probability (single-label), a sigmoid probability (multi-label) or the value (regression).

    Attributes:
        label: the top-scoring label.
        score: its score.
        scores: every label's score, by label name, in the model's label order (read-only).
        top: labels sorted by descending score, at most ``top_k`` of them.
        labels: the predicted labels: the top label (single-label); every label whose score is
            at least the threshold, best first (multi-label); empty (regression).
        value: the predicted value (regression), else None.
        logits: the model's raw outputs, in label order.
        problem_type: the served model's problem type.
        model_version: the version of the model that answered, e.g. "2" (the client's ``model_version``
            pins one; "" follows the newest the server serves).
    """

    label: str
    score: float
    scores: Scores
    top: tuple[LabelScore, ...]
    labels: tuple[str, ...]
    value: float | None
    logits: tuple[float, ...]
    problem_type: str
    model_version: str = ""

    def to_dict(self) -> dict:
        """A JSON-ready dict (what the CLI writes)."""
        out: dict = {"label": self.label, "score": self.score, "scores": dict(self.scores)}
        if self.problem_type == MULTI_LABEL:
            out["labels"] = list(self.labels)
        if self.problem_type == REGRESSION:
            out["value"] = self.value
        return out | {"logits": list(self.logits)}


def build_result(
    problem_type: str,
    label_names: Sequence[str],
    logits,
    scores,
    model_version: str = "",
    *,
    top_k: int | None = None,
    threshold: float = 0.5,
) -> Classification:
    """The ``Classification`` of one row of served ``logits`` and ``scores`` (arrays of floats)."""
    # float32s as the shortest decimals that read back to them (0.37396762, not 0.37396761775016785)
    logits, values = ([float(str(x)) for x in np.asarray(row, np.float32)] for row in (logits, scores))
    # A stable sort: equal scores keep the model's label order.
    ranked = tuple(LabelScore(label_names[i], values[i]) for i in sorted(range(len(values)), key=lambda i: -values[i]))
    if problem_type == MULTI_LABEL:
        labels = tuple(item.label for item in ranked if item.score >= threshold)
    else:
        labels = () if problem_type == REGRESSION else (ranked[0].label,)
    value = values[0] if problem_type == REGRESSION else None
    scores = Scores(zip(label_names, values, strict=True))
    return Classification(
        ranked[0].label, ranked[0].score, scores, ranked[:top_k], labels, value, tuple(logits), problem_type,
        model_version,
    )  # fmt: skip
