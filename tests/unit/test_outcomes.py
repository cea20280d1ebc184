"""Per-request outcomes shared by both models (``outcomes.py``), with stand-ins for Triton's ``pb_utils``."""

from types import SimpleNamespace

from clf_serving.engine import ForwardStats
from clf_serving.metrics import ForwardMetrics
from clf_serving.outcomes import DROP_REASONS, Dropped, counters, drop_abandoned, error_response
from clf_serving.validation import InvalidRequest


class Counter:
    def __init__(self, labels):
        self.labels, self.value = labels, 0

    def increment(self, by):
        self.value += by


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
    def __init__(self, cancelled: bool, timeout_us: int):
        self.cancelled, self.timeout_us = cancelled, timeout_us

    def is_cancelled(self):
        return self.cancelled

    def timeout(self):
        return self.timeout_us


def test_abandoned_requests_are_dropped_and_counted_by_reason():
    _, metrics = counters(MetricFamily, {"model": "m"}, {"dropped": ("x_dropped_total", "")})
    dropped = metrics["dropped"]
    live = Request(cancelled=False, timeout_us=500_000)

    assert drop_abandoned(live, dropped) is live
    expired = drop_abandoned(Request(cancelled=True, timeout_us=500_000), dropped)
    cancelled = drop_abandoned(Request(cancelled=True, timeout_us=0), dropped)

    assert (expired.reason, cancelled.reason) == DROP_REASONS
    assert {reason: counter.value for reason, counter in dropped.items()} == {"expired": 1, "cancelled": 1}
    assert dropped["expired"].labels == {"model": "m", "reason": "expired"}


def test_each_outcome_gets_its_status_and_outputs_get_no_error():
    invalid = error_response(PB_UTILS, InvalidRequest("input_ids is required"), InvalidRequest).error
    dropped = error_response(PB_UTILS, Dropped("gone", "expired"), InvalidRequest).error
    failure = TritonError("forward failed: out of memory")

    assert (invalid.message(), invalid.code()) == ("input_ids is required", TritonError.INVALID_ARG)
    assert (dropped.message(), dropped.code()) == ("gone", TritonError.CANCELLED)
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
    metrics = ForwardMetrics(MetricFamily, {"model": "m"})
    stats = [ForwardStats(rows=3, real_tokens=30, padded_tokens=32, attention_tokens=36)] * 2

    metrics.record(stats, duration_us=1500.0)

    values = {key: c.value for key, c in metrics.counters.items() if key != "dropped"}
    assert values == {
        "forwards": 2,
        "sequences": 6,
        "real_tokens": 60,
        "padded_tokens": 64,
        "attention_tokens": 72,
        "forward_us": 1500.0,
    }
    assert set(metrics.dropped) == set(DROP_REASONS)
