"""Forwards short enough for the callers' deadlines.

Under overload Triton's dynamic batcher hands the model the oldest requests still alive, and one
forward over all of them can take longer than their callers' deadlines: every one of them would be
computed for nobody. So when the requests of an execute carry a ``timeout`` (the client library
sends its deadline as one), ``model.py`` cuts their rows into chunks that each take at most half the
shortest timeout at the speed measured so far, and before each chunk drops the requests whose
caller has gone in the meantime. Requests without a timeout, or with one that a whole batch fits
in, take one forward as before.
"""

from __future__ import annotations

from dataclasses import dataclass

# A chunk may take this share of the shortest timeout among the execute's requests.
CHUNK_SHARE_OF_TIMEOUT = 0.5


@dataclass
class RowRate:
    """Rows per second of this instance's forwards: an exponential moving average over executes."""

    rows_per_s: float | None = None
    weight: float = 0.2

    def record(self, rows: int, seconds: float) -> None:
        if rows <= 0 or seconds <= 0:
            return
        rate = rows / seconds
        self.rows_per_s = rate if self.rows_per_s is None else (1 - self.weight) * self.rows_per_s + self.weight * rate


def chunk_rows(timeouts_us: list[int], rows_per_s: float | None) -> int | None:
    """Rows per chunk for requests with these timeouts (0: none), or None for a single forward."""
    timeouts = [t for t in timeouts_us if t > 0]
    if not timeouts or not rows_per_s:
        return None
    return max(1, int(min(timeouts) / 1e6 * CHUNK_SHARE_OF_TIMEOUT * rows_per_s))


def chunks(row_counts: list[int], limit: int | None) -> list[list[int]]:
    """The indices of the requests that have rows (count > 0), in order, in chunks of at most ``limit``
    rows; a request is never split, so one over the limit is a chunk of its own. None: one chunk."""
    indices = [i for i, count in enumerate(row_counts) if count > 0]
    if limit is None:
        return [indices] if indices else []
    result: list[list[int]] = []
    current, rows = [], 0
    for i in indices:
        if current and rows + row_counts[i] > limit:
            result.append(current)
            current, rows = [], 0
        current.append(i)
        rows += row_counts[i]
    if current:
        result.append(current)
    return result
