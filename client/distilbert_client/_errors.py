"""The exceptions a caller can catch, by kind, and the one place they are mapped.

Our exception hierarchy:

* ClassifierError
  + ServerUnavailableError ..... server down, unreachable, restarting or its queue full; retried
  + ModelNotReadyError ......... the server answers, the model is missing or not loaded; retried
                                 once the client has read its config (a reload), not before
  + InvalidInputError .......... the request was rejected as malformed (also a ``ValueError``)
  + DeadlineExceededError ...... the call's deadline passed first (also a ``TimeoutError``)
  + ServerError ................ the server failed while serving a valid request
  + IncompatibleModelError ..... the local tokenizer does not fit the served model (at construction)

Every error raised by ``tritonclient`` or gRPC is translated by ``map_error`` and raised
``from`` the original, so the traceback keeps both; ``message`` is the server's own text.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import grpc
from tritonclient.utils import InferenceServerException

__all__ = [
    "ClassifierError",
    "DeadlineExceededError",
    "InvalidInputError",
    "ModelNotReadyError",
    "ServerError",
    "ServerUnavailableError",
    "IncompatibleModelError",
    "map_error",
    "mapped_errors",
]


class ClassifierError(Exception):
    """Base class of every error the client raises.

    ``message`` is the server's (or the client's) text, ``status`` the gRPC status code
    name when the error came from the server (e.g. ``"INVALID_ARGUMENT"``), else None.
    """

    def __init__(self, message: str, *, status: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class ServerUnavailableError(ClassifierError):
    """The server cannot take the request now: down, unreachable, restarting, or its queue is full."""


class ModelNotReadyError(ClassifierError):
    """The server answers, but the model is not in its repository or not loaded."""


class InvalidInputError(ClassifierError, ValueError):
    """The server (or the client, before sending) rejected the input as malformed."""


class DeadlineExceededError(ClassifierError, TimeoutError):
    """The call did not complete before its deadline."""


class ServerError(ClassifierError):
    """The server failed while serving a request it accepted."""


class IncompatibleModelError(ClassifierError, ValueError):
    """The local tokenizer (or this client) disagrees with what the served model expects."""


# Triton answers UNAVAILABLE both for a server that cannot take requests and for a model
# without a loaded version; only the message tells them apart.
_MODEL_NOT_READY_PHRASES = ("unknown model", "no available versions", "is not ready", "not found")


def _status_name(status: object) -> str | None:
    """``StatusCode.NOT_FOUND`` (tritonclient's string) or a ``grpc.StatusCode`` → ``NOT_FOUND``."""
    if status is None:
        return None
    if isinstance(status, grpc.StatusCode):
        return status.name
    return str(status).rsplit(".", 1)[-1]


def map_error(error: BaseException) -> ClassifierError:
    """The ``ClassifierError`` for a ``tritonclient``/gRPC error, keeping the server's message."""
    if isinstance(error, ClassifierError):
        return error
    if isinstance(error, InferenceServerException):
        message, status = error.message() or str(error), _status_name(error.status())
    elif isinstance(error, grpc.RpcError) and hasattr(error, "code"):
        message, status = error.details() or str(error), _status_name(error.code())
    else:
        return ClassifierError(str(error))

    lowered = message.lower()
    if status == "NOT_FOUND" or (status == "UNAVAILABLE" and any(p in lowered for p in _MODEL_NOT_READY_PHRASES)):
        return ModelNotReadyError(message, status=status)
    # CANCELLED reaches this client only from the server's side (this client never cancels its
    # own calls): a server shutting down or restarting drops its in-flight calls. Transient.
    if status in ("UNAVAILABLE", "CANCELLED"):
        return ServerUnavailableError(message, status=status)
    if status == "INVALID_ARGUMENT":
        return InvalidInputError(message, status=status)
    if status == "DEADLINE_EXCEEDED":
        return DeadlineExceededError(message, status=status)
    if status is None:
        # tritonclient raises without a status for mistakes it catches before sending.
        return InvalidInputError(message)
    return ServerError(message, status=status)


@contextlib.contextmanager
def mapped_errors() -> Iterator[None]:
    """Translate errors raised inside the block (sync or ``await`` alike) into ``ClassifierError``."""
    try:
        yield
    except (InferenceServerException, grpc.RpcError) as error:
        raise map_error(error) from error
