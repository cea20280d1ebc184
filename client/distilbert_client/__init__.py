"""Typed gRPC client for a DistilBERT text classifier served by Triton: ``Classifier``, ``AsyncClassifier``.

Installs without torch: tokenization uses the checkpoint's fast tokenizer.
"""

from ._clients import AsyncClassifier, Classifier
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
