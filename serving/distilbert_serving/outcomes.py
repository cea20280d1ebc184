"""What each request of an execute comes to, the same in both models.

Each stage of ``execute`` keeps one entry per request: its data, or what ends it — ``Dropped``
(nobody waits for the answer any more), the model's own invalid-input error, or a
``TritonError`` — so every request gets exactly one response and one request's failure never
fails another's. The models' Prometheus counters live here too (``Counters``), sent to the server off
the requests' path. Each refusal is tagged with its ``contract.Reason``.
"""

from __future__ import annotations

import json
import threading
import time

from .contract import DEADLINE_PARAMETER, Reason, tagged

# Why a request was dropped before its forward pass: the ``reason`` label of the dropped counters.
DROP_REASONS = (Reason.EXPIRED.value, Reason.CANCELLED.value)
# How often the counters' increments are sent to the server (``Counters``): Prometheus scrapes every
# 15 s or so, so a scrape never sees the lag; whoever reads the counters right after traffic waits it out.
FLUSH_S = 0.5


class Dropped(Exception):
    """A request answered CANCELLED before its forward pass, and why (one of ``DROP_REASONS``)."""

    def __init__(self, message: str, reason: str):
        super().__init__(tagged(Reason(reason), message))
        self.reason = reason


def drop_abandoned(request, dropped_counters: dict, ask_triton: bool = True):
    """``request``, or ``Dropped`` (counted by reason) when nobody waits for its answer any more.

    A request whose caller's deadline stamp (``time_left_s``) has passed is expired. With
    ``ask_triton``, Triton is asked too whether the request was cancelled: it marks a request cancelled
    when its gRPC call is cancelled, which is also what gRPC does when the call's deadline passes; a
    request that carried a ``timeout`` (the client library sends its deadline as one) is counted as
    expired, any other as cancelled. Asking is a round trip to the server: worth it only before work
    that costs more (``deadlines.worth_asking``); Triton's queue drops cancelled requests itself.
    """
    if ask_triton and request.is_cancelled():
        reason = DROP_REASONS[0] if request.timeout() else DROP_REASONS[1]
        dropped_counters[reason].increment(1)
        return Dropped(f"request {reason} before its forward pass: its caller no longer waits for the answer", reason)
    left = time_left_s(request, time.time())
    return request if left is None or left > 0 else expire(left, dropped_counters)


def expire(left_s: float, dropped_counters: dict) -> Dropped:
    """``Dropped`` (counted as expired) for a request whose deadline comes in ``left_s``, before its answer."""
    dropped_counters[DROP_REASONS[0]].increment(1)
    why = f"its caller's deadline comes in {max(left_s, 0) * 1e3:.0f} ms, before the answer"
    return Dropped(f"request {DROP_REASONS[0]} before its forward pass: {why}", DROP_REASONS[0])


def time_left_s(request, now_s: float) -> float | None:
    """Seconds until the caller's deadline (``DEADLINE_PARAMETER``, on the caller's clock), or None.

    Triton gives a Python model a request's ``timeout`` but not its age, so under overload the model
    cannot tell a fresh request from one about to expire; the caller's stamp tells it. The clocks
    must agree to well within the deadlines (NTP does). A stamp that cannot be right is ignored:
    Triton's queue refuses a request that waited its whole ``timeout``, so one here has not, and its
    time left is at most that timeout; a stamp further back than that is a clock that disagrees.
    """
    timeout_s = request.timeout() / 1e6
    if not timeout_s:
        return None
    try:
        stamp = json.loads(request.parameters() or "{}").get(DEADLINE_PARAMETER)
    except (ValueError, AttributeError):
        return None
    if isinstance(stamp, bool) or not isinstance(stamp, (int, float)):
        return None
    left = stamp / 1e3 - now_s
    return min(left, timeout_s) if left > -timeout_s else None


def row_spans(entries: list) -> list[slice | None]:
    """Where each request's rows lie among the rows of all requests of an execute.

    An entry is a request's list of rows, or what ended it (anything but a list): None, no rows.
    """
    spans, start = [], 0
    for entry in entries:
        if isinstance(entry, list):
            spans.append(slice(start, start + len(entry)))
            start += len(entry)
        else:
            spans.append(None)
    return spans


def error_response(pb_utils, outcome, invalid_input: type):
    """The error response of a request that ended with ``outcome`` (not a tuple of outputs), else None.

    ``pb_utils`` is Triton's ``triton_python_backend_utils``, passed in so this file loads without it.
    Each response gets a ``TritonError`` of its own, also where several requests share one failure (a
    failed forward, a refused BLS chunk): the Python backend writes an error into shared memory each
    time a response carrying it is sent, and a second write frees the first copy while the first
    response still points to it. The server then frees it again, which corrupted the shared-memory
    heap and crashed the stub and tritonserver under overload bursts (Triton 2.51; docs/RELIABILITY.md).
    """
    if isinstance(outcome, tuple):
        return None
    if isinstance(outcome, pb_utils.TritonError):
        message, code = outcome.message(), getattr(outcome, "code", lambda: None)()
    else:
        code_name = "CANCELLED" if isinstance(outcome, Dropped) else "INVALID_ARG"
        if not isinstance(outcome, (Dropped, invalid_input)):
            raise TypeError(f"not an outcome: {outcome!r}")
        message = str(outcome) if isinstance(outcome, Dropped) else tagged(Reason.INVALID_INPUT, str(outcome))
        code = getattr(pb_utils.TritonError, code_name, None)  # older backends: no codes
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, *(() if code is None else (code,))))


class Stopwatch:
    """Where an execute's time goes: ``lap(stage)`` adds the time since the last lap to ``stage``'s
    counter, in microseconds. Each lap is a clock read and an addition: cheap enough for every execute."""

    def __init__(self, counters: dict):
        self.counters = counters  # stage → Counter
        self.last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.counters[stage].increment((now - self.last) * 1e6)
        self.last = now


class Counter:
    """One Prometheus counter whose increments add up here until its ``Counters`` sends them."""

    def __init__(self, metric, lock: threading.Lock):
        self.metric = metric  # the pb_utils Metric, on the server's side
        self._lock = lock
        self._pending = 0.0

    def increment(self, value: float) -> None:
        with self._lock:
            self._pending += value

    def flush(self) -> None:
        with self._lock:
            value, self._pending = self._pending, 0.0
        if value:
            self.metric.increment(value)


class Counters(dict):
    """Prometheus counters (``pb_utils.MetricFamily``), a ``Counter`` for each key of ``specs``: key →
    (metric name, description), or (metric name, description, (label, values)) for one counter per
    value of ``label``, by value; ``"dropped"`` is counted by ``reason`` (``DROP_REASONS``).

    Each ``Metric.increment`` is a round trip from the model's process to the server: ~100 µs each on
    the 2-core development machine (docs/BENCHMARKS.md), and the token model makes
    six per forward, ~0.5 ms of a lone request's answer. So increments only add up in the request's
    path, and a thread sends them every ``flush_s`` seconds (None: only ``flush`` does); ``close``
    sends what is left and stops it.
    """

    def __init__(self, metric_family, labels: dict[str, str], specs: dict, flush_s: float | None = FLUSH_S):
        super().__init__()
        lock = threading.Lock()
        self.families = []  # a Metric is only valid while its MetricFamily lives
        for key, (name, description, *by) in specs.items():
            family = metric_family(name=name, description=description, kind=metric_family.COUNTER)
            self.families.append(family)
            label, values = by[0] if by else ("reason", DROP_REASONS) if key == "dropped" else (None, ())
            if label:
                self[key] = {v: Counter(family.Metric(labels={**labels, label: v}), lock) for v in values}
            else:
                self[key] = Counter(family.Metric(labels=labels), lock)
        self._stop = threading.Event()
        self._thread = None
        if flush_s is not None:
            self._thread = threading.Thread(target=self._send, args=(flush_s,), name="counters", daemon=True)
            self._thread.start()

    def _send(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            self.flush()

    def flush(self) -> None:
        """Send every counter's increments since the last flush."""
        for counter in self.values():
            for one in counter.values() if isinstance(counter, dict) else (counter,):
                one.flush()

    def close(self) -> None:
        """Stop the thread and send what is left (the model's ``finalize``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.flush()
