"""Per-request outcomes shared by both models (``outcomes.py``), with stand-ins for Triton's ``pb_utils``."""

import json
import threading
import time
from types import SimpleNamespace

import pytest
from tritonclient.utils import InferenceServerException

from distilbert_client import DeadlineExceededError
from distilbert_client._core import server_deadline
from distilbert_client._errors import map_error
from distilbert_serving.contract import DEADLINE_PARAMETER, Reason, reason_of
from distilbert_serving.outcomes import (
    DROP_REASONS,
    Counters,
    Dropped,
    drop_abandoned,
    error_response,
    expire,
    time_left_s,
)
from distilbert_serving.token_model.engine import ForwardStats
from distilbert_serving.token_model.metrics import COUNTERS, ForwardMetrics
from distilbert_serving.token_model.validation import InvalidRequest


class Counter:
    def __init__(self, labels):
        self.labels, self.value, self.threads = labels, 0, set()

    def increment(self, by):
        self.value += by
        self.threads.add(threading.current_thread().name)


class MetricFamily:
    COUNTER = "counter"

    def __init__(self, name, description, kind):
        self.name = name

    def Metric(self, labels):  # noqa: N802 - pb_utils' name
        return Counter(labels)


class TritonError:
    CANCELLED, INVALID_ARG, UNAVAILABLE = "cancelled-code", "invalid-code", "unavailable-code"

    def __init__(self, message, code=None):
        self._message, self._code = message, code

    def message(self):
        return self._message

    def code(self):
        return self._code


PB_UTILS = SimpleNamespace(TritonError=TritonError, InferenceResponse=lambda error: SimpleNamespace(error=error))


class Request:
    def __init__(self, cancelled: bool, timeout_us: int, parameters: dict | None = None):
        self.cancelled, self.timeout_us, self.params = cancelled, timeout_us, parameters

    def is_cancelled(self):
        return self.cancelled

    def timeout(self):
        return self.timeout_us

    def parameters(self):
        return json.dumps(self.params or {})


def stamped(left_s: float, timeout_s: float = 0.5) -> Request:
    """A live request whose caller's deadline comes in ``left_s`` seconds."""
    deadline = int((time.time() + left_s) * 1e3)
    return Request(cancelled=False, timeout_us=int(timeout_s * 1e6), parameters={DEADLINE_PARAMETER: deadline})


def test_abandoned_requests_are_dropped_and_counted_by_reason():
    metrics = Counters(MetricFamily, {"model": "m"}, {"dropped": ("x_dropped_total", "")}, flush_s=None)
    dropped = metrics["dropped"]
    live = Request(cancelled=False, timeout_us=500_000)

    assert drop_abandoned(live, dropped) is live
    expired = drop_abandoned(Request(cancelled=True, timeout_us=500_000), dropped)
    cancelled = drop_abandoned(Request(cancelled=True, timeout_us=0), dropped)
    metrics.flush()

    assert (expired.reason, cancelled.reason) == DROP_REASONS
    assert {reason: counter.metric.value for reason, counter in dropped.items()} == {"expired": 1, "cancelled": 1}
    assert dropped["expired"].metric.labels == {"model": "m", "reason": "expired"}


def test_a_request_whose_stamped_deadline_passed_or_comes_too_soon_is_dropped_as_expired():
    metrics = Counters(MetricFamily, {"model": "m"}, {"dropped": ("x_dropped_total", "")}, flush_s=None)
    dropped = metrics["dropped"]
    in_time = stamped(left_s=0.4)

    assert drop_abandoned(in_time, dropped) is in_time
    passed = drop_abandoned(stamped(left_s=-0.1), dropped)
    too_soon = expire(0.12, dropped)  # deadlines.too_late found its answer would come after 0.12 s

    assert isinstance(passed, Dropped) and passed.reason == "expired" and "deadline comes in 0 ms" in str(passed)
    assert too_soon.reason == "expired" and "deadline comes in 120 ms, before the answer" in str(too_soon)
    metrics.flush()
    assert {reason: counter.metric.value for reason, counter in dropped.items()} == {"expired": 2, "cancelled": 0}


@pytest.mark.parametrize(
    ("make_request", "expected_s"),
    [
        (lambda: Request(cancelled=False, timeout_us=500_000), None),  # no stamp
        (lambda: stamped(left_s=0.3), 0.3),
        (lambda: stamped(left_s=-0.2), -0.2),  # past, yet plausible: the queue refuses only after the timeout
        (lambda: stamped(left_s=-0.6), None),  # further back than the timeout: the clocks disagree
        (lambda: stamped(left_s=5.0), 0.5),  # ahead of the timeout: no more than the timeout is left
        (lambda: Request(cancelled=False, timeout_us=0, parameters={DEADLINE_PARAMETER: 1}), None),  # no timeout
        (lambda: Request(cancelled=False, timeout_us=500_000, parameters={DEADLINE_PARAMETER: "soon"}), None),
    ],
)
def test_time_left_is_read_from_the_callers_stamp_only_where_it_is_plausible(make_request, expected_s):
    left = time_left_s(make_request(), time.time())

    assert left is None if expected_s is None else left == pytest.approx(expected_s, abs=0.02)


def test_the_client_library_stamps_the_parameter_the_models_read_and_reads_their_expired_answer():
    metrics = Counters(MetricFamily, {"model": "m"}, {"dropped": ("x_dropped_total", "")}, flush_s=None)
    answer = InferenceServerException(msg=str(expire(0.1, metrics["dropped"])), status="StatusCode.CANCELLED")

    assert set(server_deadline(1.0)["parameters"]) == {DEADLINE_PARAMETER}
    assert isinstance(map_error(answer), DeadlineExceededError)  # failed its deadline: not retried


def test_each_outcome_gets_its_status_and_outputs_get_no_error():
    invalid = error_response(PB_UTILS, InvalidRequest("input_ids is required"), InvalidRequest).error
    dropped = error_response(PB_UTILS, Dropped("gone", "expired"), InvalidRequest).error
    failure = TritonError("forward failed: out of memory")

    assert (invalid.message(), invalid.code()) == ("[invalid_input] input_ids is required", TritonError.INVALID_ARG)
    assert (dropped.message(), dropped.code()) == ("[expired] gone", TritonError.CANCELLED)
    assert (reason_of(invalid.message()), reason_of(dropped.message())) == (Reason.INVALID_INPUT, Reason.EXPIRED)
    relayed = error_response(PB_UTILS, failure, InvalidRequest).error
    assert (relayed.message(), relayed.code()) == ("forward failed: out of memory", None)
    assert error_response(PB_UTILS, ("logits", "scores"), InvalidRequest) is None


def test_requests_that_share_a_failure_get_an_error_object_each():
    # One TritonError sent in two responses corrupts the Python backend's shared memory (2.51): the
    # second send frees the first copy, which the server then frees again.
    refused = TritonError("distilbert_classifier: Exceeds maximum queue size", TritonError.UNAVAILABLE)
    first, second = (error_response(PB_UTILS, refused, InvalidRequest).error for _ in range(2))

    assert first is not second and refused not in (first, second)
    assert (second.message(), second.code()) == (refused.message(), TritonError.UNAVAILABLE)


def test_forward_metrics_count_each_forward():
    metrics = ForwardMetrics(MetricFamily, {"model": "m"}, flush_s=None)
    stats = [ForwardStats(rows=3, real_tokens=30, padded_tokens=32, attention_tokens=36)] * 2

    metrics.record(stats, duration_us=1500.0)
    metrics.counters.flush()

    values = {key: c.metric.value for key, c in metrics.counters.items() if key in COUNTERS and key != "dropped"}
    assert values == {
        "forwards": 2,
        "sequences": 6,
        "real_tokens": 60,
        "padded_tokens": 64,
        "attention_tokens": 72,
        "forward_us": 1500.0,
    }
    assert set(metrics.dropped) == set(DROP_REASONS)


def test_counters_reach_the_server_from_their_own_thread_not_the_requests():
    # Each pb_utils Metric.increment is a round trip to the server: none may delay an answer.
    counters = Counters(MetricFamily, {"model": "m"}, {"rows": ("x_rows_total", "")}, flush_s=0.01)
    rows = counters["rows"]
    rows.increment(3)
    rows.increment(4)
    sent_by = time.monotonic() + 10
    while rows.metric.value != 7 and time.monotonic() < sent_by:
        time.sleep(0.01)

    assert rows.metric.value == 7 and rows.metric.threads == {"counters"}
    rows.increment(2)
    counters.close()  # finalize: what is left is sent, the thread ends
    assert rows.metric.value == 9 and not any(t.name == "counters" for t in threading.enumerate())
