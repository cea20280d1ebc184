"""Prometheus counters beside Triton's own: how full and how padded each forward is, and what was dropped."""

from __future__ import annotations

from ..outcomes import FLUSH_S, Counters, Stopwatch

# The stages of an execute (model.py), in order; ``deadlines`` is the bookkeeping around the forwards.
STAGES = ("drop", "decode", "validate", "deadlines", "forward", "scores", "encode")

COUNTERS = {
    "forwards": ("clf_forward_passes_total", "Forward passes run by the classifier"),
    "sequences": ("clf_forward_sequences_total", "Sequences classified, summed over forward passes"),
    "real_tokens": ("clf_forward_real_tokens_total", "Real (attended) tokens in forward passes"),
    "padded_tokens": ("clf_forward_padded_tokens_total", "Tokens computed in forward passes, padding included"),
    "attention_tokens": (
        "clf_forward_attention_tokens_total",
        "Query positions computed in attention, padding included",
    ),
    "forward_us": ("clf_forward_duration_us_total", "Time spent in forward passes, microseconds"),
    "dropped": (
        "clf_requests_dropped_total",
        "Requests answered CANCELLED before the forward pass: their caller no longer waits. "
        "reason expired: the request carried a timeout (a deadline), cancelled: it did not",
    ),
}

# Where each execute's time goes (benchmarks/request_path.py reads them per request).
TIMING = {
    "executes": ("clf_executes_total", "Executes (dynamic batches) run"),
    "stage_us": (
        "clf_execute_stage_duration_us_total",
        "Time spent in each stage of execute, microseconds (stage: " + ", ".join(STAGES) + ")",
        ("stage", STAGES),
    ),
}


class ForwardMetrics:
    """The token model's counters; ``metric_family`` is ``pb_utils.MetricFamily``."""

    def __init__(self, metric_family, labels: dict[str, str], flush_s: float | None = FLUSH_S):
        self.counters = Counters(metric_family, labels, COUNTERS | TIMING, flush_s)  # one thread sends them all
        self.dropped = self.counters["dropped"]

    def stopwatch(self) -> Stopwatch:
        """A stopwatch for one execute, counted as one."""
        self.counters["executes"].increment(1)
        return Stopwatch(self.counters["stage_us"])

    def record(self, stats, duration_us: float) -> None:
        """Count the forwards of one execute (``engine.ForwardStats``) and the time they took."""
        for forward in stats:
            for key, value in (
                ("forwards", 1),
                ("sequences", forward.rows),
                ("real_tokens", forward.real_tokens),
                ("padded_tokens", forward.padded_tokens),
                ("attention_tokens", forward.attention_tokens),
            ):
                self.counters[key].increment(value)
        self.counters["forward_us"].increment(duration_us)

    def close(self) -> None:
        self.counters.close()
