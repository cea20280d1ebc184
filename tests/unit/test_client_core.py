"""The client core without a server: retry decisions, options, and its flows driven by hand.

A flow yields the calls it wants made (``Rpc``) and the pauses it wants (``Sleep``); these tests
play the server by sending answers in and throwing errors in, as the sync and async shells do.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from distilbert_client import (
    ClassifierError,
    DeadlineExceededError,
    IncompatibleModelError,
    InvalidInputError,
    ModelNotReadyError,
    RetryPolicy,
    ServerError,
    ServerUnavailableError,
)
from distilbert_client._batching import Chunk
from distilbert_client._core import ClientOptions, Core, Rpc, Sleep
from distilbert_client._model_info import ModelInfo, ServedInput
from distilbert_client._retry import Deadline, next_step

POLICY = RetryPolicy(attempts=3, initial_backoff_s=0.1, multiplier=2.0, jitter=0.0)
UNAVAILABLE = ServerUnavailableError("failed to connect to all addresses", status="UNAVAILABLE")
NOT_READY = ModelNotReadyError("Request for unknown model: 'm' has no available versions", status="UNAVAILABLE")
RELOADING = InferenceServerException(msg=NOT_READY.message, status="StatusCode.UNAVAILABLE")


def options(**overrides) -> ClientOptions:
    values = dict(
        url="127.0.0.1:8001", model="m", model_version="", timeout_s=60.0, retry=POLICY, max_concurrency=4,
        rows_per_request=None, ready_timeout_s=None, root_certificates=None, load_balancing="pick_first",
    )  # fmt: skip
    return ClientOptions(**(values | overrides))


def connected_core(**overrides) -> Core:
    core = Core(options(**overrides), tokenizer=None)
    core.info = ModelInfo(
        name="m", max_batch_size=8, inputs=(ServedInput("input_ids", "INT64", False),),
        outputs=("logits", "probabilities"), problem_type="single_label_classification", labels=("a", "b"),
        max_sequence_length=16, vocab_size=None,
    )  # fmt: skip
    return core


class Answer:
    """An ``InferResult`` stand-in."""

    def as_numpy(self, name: str) -> np.ndarray:
        return np.array([[0.0, 1.0]]) if name == "logits" else np.array([[0.25, 0.75]])

    def get_response(self):
        return type("ModelInferResponse", (), {"model_version": "2"})()


def test_next_step_waits_with_backoff_when_server_is_unavailable_and_attempts_remain():
    assert next_step(UNAVAILABLE, 1, POLICY, Deadline(60)) == pytest.approx(0.1)
    assert next_step(UNAVAILABLE, 2, POLICY, Deadline(None)) == pytest.approx(0.2)


def test_next_step_gives_up_with_the_error_when_attempts_are_used_up():
    assert next_step(UNAVAILABLE, 3, POLICY, Deadline(60)) is UNAVAILABLE
    assert next_step(NOT_READY, 3, POLICY, Deadline(60)) is NOT_READY


def test_next_step_retries_a_model_not_ready_only_once_its_config_was_read():
    assert next_step(NOT_READY, 1, POLICY, Deadline(60)) == pytest.approx(0.1)
    assert next_step(NOT_READY, 1, POLICY, Deadline(60), retry_not_ready=False) is NOT_READY


def test_next_step_gives_up_when_the_wait_would_pass_the_deadline():
    assert next_step(UNAVAILABLE, 1, POLICY, Deadline(0.05)) is UNAVAILABLE
    assert next_step(NOT_READY, 1, POLICY, Deadline(0.05)) is NOT_READY


@pytest.mark.parametrize(
    "error",
    [InvalidInputError("bad ids"), ServerError("forward failed", status="INTERNAL"), DeadlineExceededError("late")],
)
def test_next_step_never_retries_errors_that_would_fail_again(error):
    assert next_step(error, 1, POLICY, Deadline(60)) is error


def test_next_step_says_deadline_exceeded_when_the_server_dropped_a_request_after_its_deadline():
    deadline = Deadline(0.01)
    time.sleep(0.02)
    dropped = ServerUnavailableError("Request timeout expired", status="UNAVAILABLE")

    step = next_step(dropped, 1, POLICY, deadline)

    assert isinstance(step, DeadlineExceededError) and "Request timeout expired" in step.message


def test_client_options_ask_grpc_for_round_robin_when_load_balancing_is_round_robin():
    channel_args = dict(options(load_balancing="round_robin").channel()["channel_args"])

    assert channel_args["grpc.lb_policy_name"] == "round_robin"
    assert channel_args["grpc.max_reconnect_backoff_ms"] == 1000
    assert dict(options().channel()["channel_args"])["grpc.lb_policy_name"] == "pick_first"
    assert options(root_certificates="ca.pem").channel()["ssl"] is True


@pytest.mark.parametrize(
    ("overrides", "phrase"),
    [
        ({"load_balancing": "least_request"}, "load_balancing must be one of"),
        ({"max_concurrency": 0}, "max_concurrency must be at least 1"),
        ({"rows_per_request": 0}, "rows_per_request must be at least 1"),
    ],
)
def test_client_options_reject_a_bad_value_naming_it(overrides, phrase):
    with pytest.raises(ValueError, match=phrase):
        options(**overrides)


def test_infer_flow_sends_the_remaining_deadline_to_grpc_to_triton_and_as_a_stamp():
    core = connected_core()
    flow = core.infer(Chunk(indices=(0,), arrays={"input_ids": np.array([[101, 102]])}), Deadline(2.0))

    rpc = next(flow)

    assert rpc.method == "infer" and rpc.kwargs["model_name"] == "m"
    assert 1.9 < rpc.kwargs["client_timeout"] <= 2.0
    assert 1_900_000 < rpc.kwargs["timeout"] <= 2_000_000 and isinstance(rpc.kwargs["timeout"], int)
    # The deadline on the wall clock, in ms since the epoch, for the server's model (outcomes.time_left_s).
    assert 1_900 < rpc.kwargs["parameters"]["deadline_unix_ms"] - time.time() * 1e3 <= 2_000
    with pytest.raises(StopIteration) as done:
        flow.send(Answer())
    ((logits, scores, version),) = done.value.value
    assert list(scores) == [0.25, 0.75] and list(logits) == [0.0, 1.0] and version == "2"


def test_infer_flow_sends_no_deadline_when_the_call_has_none():
    flow = connected_core().infer(Chunk(indices=(0,), arrays={"input_ids": np.array([[101]])}), Deadline(None))

    rpc = next(flow)

    assert rpc.kwargs["client_timeout"] is None and rpc.kwargs["timeout"] is None
    assert "parameters" not in rpc.kwargs


def test_infer_flow_rides_through_a_model_reload_with_backoff():
    flow = connected_core().infer(Chunk(indices=(0,), arrays={"input_ids": np.array([[101]])}), Deadline(60))

    steps = [next(flow), flow.throw(RELOADING), next(flow), flow.throw(RELOADING), next(flow)]

    assert [type(step) for step in steps] == [Rpc, Sleep, Rpc, Sleep, Rpc]
    assert [steps[1].seconds, steps[3].seconds] == pytest.approx([0.1, 0.2])
    with pytest.raises(StopIteration):
        flow.send(Answer())


def test_infer_flow_raises_model_not_ready_from_the_servers_error_when_retries_run_out():
    flow = connected_core(retry=RetryPolicy(attempts=1)).infer(
        Chunk(indices=(0,), arrays={"input_ids": np.array([[101]])}), Deadline(60)
    )
    next(flow)

    with pytest.raises(ModelNotReadyError) as caught:
        flow.throw(RELOADING)

    assert caught.value.__cause__ is RELOADING


STOPPING = InferenceServerException(
    msg="[request id: <id_unknown>] Server is stopping, scheduler for model has stopped accepting new inference requests",
    status="StatusCode.UNAVAILABLE",
)
UNLOADING = InferenceServerException(
    msg="Request for unknown model: 'm' has no available versions", status="StatusCode.NOT_FOUND"
)


def test_balanced_infer_flow_resends_a_call_a_stopping_server_refused_at_once_without_using_attempts():
    core = connected_core(load_balancing="round_robin", retry=RetryPolicy(attempts=1, failovers=3))
    flow = core.infer(Chunk(indices=(0,), arrays={"input_ids": np.array([[101]])}), Deadline(60))

    steps = [next(flow), flow.throw(STOPPING), flow.throw(UNLOADING), flow.throw(STOPPING)]

    assert [type(step) for step in steps] == [Rpc, Rpc, Rpc, Rpc], "no pause: the next server takes it"
    with pytest.raises(StopIteration):
        flow.send(Answer())


def test_balanced_infer_flow_falls_back_to_backoff_once_failovers_are_used_up():
    core = connected_core(load_balancing="round_robin", retry=RetryPolicy(attempts=2, failovers=1, jitter=0.0))
    flow = core.infer(Chunk(indices=(0,), arrays={"input_ids": np.array([[101]])}), Deadline(60))

    steps = [next(flow), flow.throw(UNLOADING), flow.throw(UNLOADING), next(flow)]

    assert [type(step) for step in steps] == [Rpc, Rpc, Sleep, Rpc]
    with pytest.raises(ModelNotReadyError):
        flow.throw(UNLOADING)


def test_pick_first_infer_flow_never_fails_over_a_refusal_to_the_same_server():
    flow = connected_core().infer(Chunk(indices=(0,), arrays={"input_ids": np.array([[101]])}), Deadline(60))

    assert type(next(flow)) is Rpc and type(flow.throw(STOPPING)) is Sleep


@pytest.mark.parametrize(
    "error",
    [
        InferenceServerException(msg="input_ids[0][1] = 40000 is outside the vocabulary", status="INVALID_ARGUMENT"),
        InferenceServerException(msg="failed to connect to all addresses", status="StatusCode.UNAVAILABLE"),
        InferenceServerException(msg="Exceeds maximum queue size", status="StatusCode.UNAVAILABLE"),
    ],
)
def test_balanced_infer_flow_does_not_fail_over_what_is_not_one_servers_refusal(error):
    core = connected_core(load_balancing="round_robin", retry=RetryPolicy(attempts=1))
    flow = core.infer(Chunk(indices=(0,), arrays={"input_ids": np.array([[101]])}), Deadline(60))
    next(flow)

    with pytest.raises(ClassifierError):
        flow.throw(error)


def test_retry_policy_rejects_negative_failovers():
    with pytest.raises(ValueError, match="failovers"):
        RetryPolicy(failovers=-1)


def test_connect_flow_fails_at_once_when_the_model_name_is_unknown():
    flow = Core(options(model="nope"), tokenizer=None).connect()
    rpc = next(flow)

    assert rpc.method == "get_model_config" and rpc.kwargs["model_name"] == "nope"
    with pytest.raises(ModelNotReadyError):
        flow.throw(InferenceServerException(msg="Request for unknown model: 'nope' is not found", status="NOT_FOUND"))


def test_wait_until_ready_flow_says_model_not_ready_when_only_the_server_answers_ready():
    flow = Core(options(), tokenizer=None).wait_until_ready(0.05)
    steps = [next(flow)]
    with pytest.raises(ModelNotReadyError, match="model 'm' at 127.0.0.1:8001 not ready after 0.05 s"):
        while True:  # the server is ready, the model never is
            steps.append(flow.send(steps[-1].method == "is_server_ready"))
            if isinstance(steps[-1], Sleep):
                time.sleep(steps[-1].seconds)
                steps.append(next(flow))

    assert {"is_server_ready", "is_model_ready"} <= {s.method for s in steps if isinstance(s, Rpc)}


def test_wait_until_ready_flow_says_server_unavailable_with_its_last_error_when_it_never_answers():
    flow = Core(options(), tokenizer=None).wait_until_ready(0.05)
    step = next(flow)
    with pytest.raises(ServerUnavailableError, match="not ready after 0.05 s: failed to connect"):
        while True:
            step = flow.throw(InferenceServerException(msg="failed to connect", status="StatusCode.UNAVAILABLE"))
            assert isinstance(step, Sleep)
            time.sleep(step.seconds)
            step = next(flow)


def test_model_info_rejects_a_model_that_serves_no_probabilities():
    config = {
        "name": "m",
        "input": [{"name": "input_ids", "data_type": "TYPE_INT64", "dims": ["-1"]}],
        "output": [{"name": "logits", "data_type": "TYPE_FP32", "dims": ["2"]}],
    }

    with pytest.raises(IncompatibleModelError, match="no 'probabilities' output .* build/export.py"):
        ModelInfo.from_config(config)
