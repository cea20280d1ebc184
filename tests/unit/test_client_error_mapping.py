"""tritonclient/gRPC errors map to one client error kind each, keeping the server's message."""

from __future__ import annotations

import grpc
import pytest
from tritonclient.utils import InferenceServerException

from distilbert_client import (
    ClassifierError,
    DeadlineExceededError,
    InvalidInputError,
    ModelNotReadyError,
    ServerError,
    ServerUnavailableError,
)
from distilbert_client._errors import map_error, mapped_errors


@pytest.mark.parametrize(
    ("status", "message", "kind"),
    [
        ("StatusCode.UNAVAILABLE", "failed to connect to all addresses", ServerUnavailableError),
        # The dynamic batcher's queue is full (max_queue_size): transient, so retried.
        ("StatusCode.UNAVAILABLE", "Exceeds maximum queue size", ServerUnavailableError),
        ("StatusCode.CANCELLED", "CANCELLED", ServerUnavailableError),
        # A server that got SIGTERM (Triton 2.51): retried, on another server first when balancing.
        (
            "StatusCode.UNAVAILABLE",
            "[request id: <id_unknown>] Server is stopping, scheduler for model has stopped accepting new inference requests",
            ServerUnavailableError,
        ),
        ("StatusCode.NOT_FOUND", "Request for unknown model: 'x' has no available versions", ModelNotReadyError),
        # The model's answer to a request whose deadline would pass before its answer: not retried.
        ("StatusCode.CANCELLED", "[expired] request expired before its forward pass: ...", DeadlineExceededError),
        ("StatusCode.NOT_FOUND", "Request for unknown model: 'x' is not found", ModelNotReadyError),
        ("StatusCode.UNAVAILABLE", "Request for unknown model: 'x' has no available versions", ModelNotReadyError),
        ("StatusCode.INVALID_ARGUMENT", "input_ids[0][1] = 40000 is outside the vocabulary", InvalidInputError),
        ("StatusCode.DEADLINE_EXCEEDED", "Deadline Exceeded", DeadlineExceededError),
        ("StatusCode.INTERNAL", "forward failed: out of memory", ServerError),
        # A dead stub, until the server is restarted: retried like a restarting server.
        ("StatusCode.INTERNAL", "Stub process 'distilbert_classifier_0_0' is not healthy.", ServerUnavailableError),
        ("StatusCode.UNKNOWN", "stub crashed", ServerError),
    ],
)
def test_map_error_gives_the_kind_and_keeps_the_message_when_tritonclient_raises(status, message, kind):
    mapped = map_error(InferenceServerException(msg=message, status=status))

    assert type(mapped) is kind
    assert mapped.message == message == str(mapped)
    assert mapped.status == status.removeprefix("StatusCode.")


def test_mapped_errors_raises_from_the_original_when_a_block_fails():
    original = InferenceServerException(msg="bad ids", status="StatusCode.INVALID_ARGUMENT")

    with pytest.raises(InvalidInputError) as caught, mapped_errors():
        raise original

    assert caught.value.__cause__ is original


def test_map_error_reads_grpc_status_when_grpc_raises_directly():
    class Failed(grpc.RpcError):
        def code(self):
            return grpc.StatusCode.DEADLINE_EXCEEDED

        def details(self):
            return "Deadline Exceeded"

    assert isinstance(map_error(Failed()), DeadlineExceededError)


def test_client_errors_are_also_the_builtin_errors_callers_already_catch():
    assert issubclass(InvalidInputError, ValueError)
    assert issubclass(DeadlineExceededError, TimeoutError)
    for kind in (ServerUnavailableError, ModelNotReadyError, InvalidInputError, DeadlineExceededError, ServerError):
        assert issubclass(kind, ClassifierError)
