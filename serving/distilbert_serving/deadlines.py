"""Forwards short enough for the callers' deadlines.

Under overload Triton's dynamic batcher hands the model the oldest requests still alive, and one
forward over all of them can take longer than their callers' deadlines: every one of them would be
computed for nobody. So when the requests of an execute carry a ``timeout`` (the client library
sends its deadline as one), ``model.py`` cuts their tokens into chunks that each take at most half the
shortest timeout at the speed measured so far, and before each chunk drops the requests whose
caller has gone in the meantime (asking Triton only before a chunk long enough to be worth it,
``worth_asking``). Before any of them, it drops the requests whose deadline (stamped
by the caller: ``outcomes.time_left_s``) comes before the execute's answers would leave
(``too_late``). Requests without a timeout, or with one that a whole batch fits in, take one forward.
"""

from __future__ import annotations

from dataclasses import dataclass

# A chunk may take this share of the shortest timeout among the execute's requests.
CHUNK_SHARE_OF_TIMEOUT = 0.5
# A request with more than this share of its timeout left is never dropped for want of time (``too_late``).
FRESH_SHARE = 0.9
# What an execute is expected to take, over the forward time at the measured rate: the rate moves
# with what the other instance computes on the shared cores (±20–30 % between executes here), and the
# answers still have their way back to go. With 1.0, 10 % of the expired requests were computed.
ESTIMATE_MARGIN = 1.2
# Asking Triton whether a request was cancelled is a round trip from the model's process to the server,
# ~0.1 ms per request (``request.is_cancelled()``: 97 µs, median of 1,000). It is worth it before a forward
# long enough that the questions cost a small share of it; before shorter ones the requests' deadline
# stamps suffice. A fixed forward length instead asked on every execute of a small model once load had
# slowed its forwards past that length, and the questions slowed them further.
ASK_COST_S = 1e-4
ASK_SHARE = 0.05


def worth_asking(requests: int, forward_s: float) -> bool:
    """Whether to ask Triton about ``requests`` before a forward expected to take ``forward_s`` seconds."""
    return requests * ASK_COST_S <= ASK_SHARE * forward_s


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


def too_late(time_left_s: list[float | None], sizes: list[int], timeouts_us: list[int], rate: TokenRate) -> list[int]:
    """The requests whose answer cannot come before their caller's deadline, to drop before any forward.

    All answers of an execute leave when it returns, so each request kept needs time left for the
    forward of every kept request, with a margin (``sizes``: tokens; ``time_left_s``: None where
    unknown). The one with the least time left goes first, until the rest fit. A request is never
    asked for more than ``FRESH_SHARE`` of its timeout: a fresh one is always tried, so an estimate
    that ran slow cannot drop everything, and the next forward measures the rate again.
    """
    candidates = sorted((left, i) for i, left in enumerate(time_left_s) if left is not None and sizes[i] > 0)
    total, late = sum(sizes), []
    for left, i in candidates:
        if left >= min(ESTIMATE_MARGIN * rate.seconds_for(total), FRESH_SHARE * timeouts_us[i] / 1e6):
            break
        late.append(i)
        total -= sizes[i]
    return late


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
