"""Forwards short enough for the callers' deadlines.

Under overload Triton's dynamic batcher hands the model the oldest requests still alive, and one
forward over all of them can take longer than their callers' deadlines: every one of them would be
computed for nobody. So when the requests of an execute carry a ``timeout`` (the client library
sends its deadline as one), ``model.py`` cuts their tokens into chunks that each take at most half the
shortest timeout at the speed measured so far, and before each chunk drops the requests whose
caller has gone in the meantime, or whose deadline (stamped by the caller: ``outcomes.time_left_s``)
comes before the chunk would end. Requests without a timeout, or with one that a whole batch fits
in, take one forward.
"""

from __future__ import annotations

from dataclasses import dataclass

# A chunk may take this share of the shortest timeout among the execute's requests.
CHUNK_SHARE_OF_TIMEOUT = 0.5


@dataclass
class TokenRate:
    """Tokens per second of this instance's forwards: an exponential moving average over executes.

    Tokens, not rows: a forward's time grows with its tokens, and a row holds from 2 to 512 of them.
    """

    tokens_per_s: float | None = None
    weight: float = 0.2

    def record(self, tokens: int, seconds: float) -> None:
        if tokens <= 0 or seconds <= 0:
            return
        rate = tokens / seconds
        self.tokens_per_s = (
            rate if self.tokens_per_s is None else (1 - self.weight) * self.tokens_per_s + self.weight * rate
        )

    def seconds_for(self, tokens: int) -> float:
        """How long a forward of ``tokens`` takes at this rate; 0 before the first."""
        return tokens / self.tokens_per_s if self.tokens_per_s else 0.0


def chunk_tokens(timeouts_us: list[int], tokens_per_s: float | None) -> int | None:
    """Tokens per chunk for requests with these timeouts (0: none), or None for a single forward."""
    timeouts = [t for t in timeouts_us if t > 0]
    if not timeouts or not tokens_per_s:
        return None
    return max(1, int(min(timeouts) / 1e6 * CHUNK_SHARE_OF_TIMEOUT * tokens_per_s))


def needs_s(chunk_s: float, timeout_us: int) -> float:
    """How much of its deadline a request in a chunk of ``chunk_s`` seconds must have left to be computed.

    The chunk's time, but never more than the chunk's share of the request's timeout: a request too
    big for that alone is still tried. Otherwise a rate that ran slow once would drop every such
    request from then on, and no forward would be left to measure it again.
    """
    return min(chunk_s, CHUNK_SHARE_OF_TIMEOUT * timeout_us / 1e6)


def chunks(sizes: list[int], limit: int | None) -> list[list[int]]:
    """The indices of the requests that have tokens (size > 0), in order, in chunks of at most ``limit``
    tokens; a request is never split, so one over the limit is a chunk of its own. None: one chunk."""
    indices = [i for i, size in enumerate(sizes) if size > 0]
    if limit is None:
        return [indices] if indices else []
    result: list[list[int]] = []
    current, tokens = [], 0
    for i in indices:
        if current and tokens + sizes[i] > limit:
            result.append(current)
            current, tokens = [], 0
        current.append(i)
        tokens += sizes[i]
    if current:
        result.append(current)
    return result
