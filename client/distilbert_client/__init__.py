"""Typed gRPC client for a DistilBERT text classifier served by Triton.

::

    from distilbert_client import Classifier

    with Classifier("localhost:8001", tokenizer="path/to/checkpoint") as classifier:
        result = classifier.classify("I love this movie")
        print(result.label, result.score, dict(result.scores))

Installs without torch: tokenization uses the checkpoint's fast tokenizer.
"""

from __future__ import annotations

from ._async import AsyncClassifier
from ._core import ClientOptions
from ._errors import (
    ClassifierError,
    DeadlineExceededError,
    IncompatibleModelError,
    InvalidInputError,
    ModelNotReadyError,
    ServerError,
    ServerUnavailableError,
)
from ._model_info import ModelInfo
from ._results import Classification, LabelScore, Scores
from ._retry import RetryPolicy
from ._sync import Classifier
from ._tokenize import Truncation

__all__ = [
    "AsyncClassifier",
    "Classification",
    "Classifier",
    "ClassifierError",
    "ClientOptions",
    "DeadlineExceededError",
    "IncompatibleModelError",
    "InvalidInputError",
    "LabelScore",
    "ModelInfo",
    "ModelNotReadyError",
    "RetryPolicy",
    "Scores",
    "ServerError",
    "ServerUnavailableError",
    "Truncation",
]
