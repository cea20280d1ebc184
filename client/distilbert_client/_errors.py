"""The exceptions a caller can catch, by kind (each a ``ClassifierError``), and the one place they are mapped.

Every ``tritonclient`` or gRPC error is translated by ``map_error`` and raised ``from`` the original, so the
traceback keeps both; ``message`` is the server's own text. Which kinds are retried: ``_retry.next_step``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import grpc
from tritonclient.utils import InferenceServerException

from distilbert_serving.contract import Reason, reason_of, triton_refusal


class ClassifierError(Exception):
    """Base class of every error the client raises.

    ``message``: the server's (or the client's) text; ``status``: the server's gRPC status name, e.g. "NOT_FOUND".
    """

    def __init__(self, message: str, *, status: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class ServerUnavailableError(ClassifierError):
    """The server cannot take the request now: down, unreachable, restarting, its queue full, its model process dead."""


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


# CANCELLED reaches this client only from the server's side (it never cancels its own calls):
# a server shutting down or restarting drops its in-flight calls, so it is transient.
_BY_STATUS = {
    "NOT_FOUND": ModelNotReadyError,
    "UNAVAILABLE": ServerUnavailableError,
    "CANCELLED": ServerUnavailableError,
    "INVALID_ARGUMENT": InvalidInputError,
    "DEADLINE_EXCEEDED": DeadlineExceededError,
}
# The models' own refusals carry a reason (``contract.Reason``) where the status alone is ambiguous.
# CANCELLED with reason ``expired``: the deadline this client sent would pass before the answer came;
# a retry would fail too.
_BY_REASON = {Reason.EXPIRED: DeadlineExceededError}
# Triton's own answers carry no reason. UNAVAILABLE means a server that cannot take requests or a
# model without a loaded version; a dead Python-backend stub answers INTERNAL until the launcher's
# watchdog (or the orchestrator's liveness probe) restarts the server: transient, safe to resend.
_BY_TRITON_REFUSAL = {
    ("UNAVAILABLE", "model_not_ready"): ModelNotReadyError,
    ("UNAVAILABLE", "stopping"): ServerUnavailableError,
    ("INTERNAL", "dead_stub"): ServerUnavailableError,
}


def map_error(error: BaseException) -> ClassifierError:
    """The ``ClassifierError`` for a ``tritonclient``/gRPC error, keeping the server's message."""
    if isinstance(error, InferenceServerException):
        message, status = error.message() or str(error), error.status()
    elif isinstance(error, grpc.RpcError) and hasattr(error, "code"):
        message, status = error.details() or str(error), error.code()
    else:
        return ClassifierError(str(error))
    if status is None:  # tritonclient raises without a status for mistakes it catches before sending
        return InvalidInputError(message)
    # tritonclient's "StatusCode.NOT_FOUND" or a grpc.StatusCode (whose str is the same) → "NOT_FOUND"
    status = str(status).rsplit(".", 1)[-1]
    kind = _BY_REASON.get(reason_of(message)) or _BY_TRITON_REFUSAL.get((status, triton_refusal(message)))
    return (kind or _BY_STATUS.get(status, ServerError))(message, status=status)


@contextlib.contextmanager
def mapped_errors() -> Iterator[None]:
    """Translate errors raised inside the block (sync or ``await`` alike) into ``ClassifierError``."""
    try:
        yield
    except (InferenceServerException, grpc.RpcError) as error:
        raise map_error(error) from error


def refused_by_one_server(error: ClassifierError) -> bool:
    """Whether ``error`` is one server turning the call away, which another server may take.

    A server that got SIGTERM refuses new work (``stopping``), then answers that its model has no
    version while it unloads, and cancels what is left when its gRPC port closes (Triton 2.51, measured:
    docs/RELIABILITY.md §3); a server whose model is loading or unloading says so too.
    """
    if isinstance(error, ModelNotReadyError):
        return True
    stopping = triton_refusal(error.message) == "stopping"
    return isinstance(error, ServerUnavailableError) and (stopping or error.status == "CANCELLED")
