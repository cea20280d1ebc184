"""Deadlines and retries: what a call may spend, and which failures are worth another try (``next_step``)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from ._errors import (
    ClassifierError,
    DeadlineExceededError,
    ModelNotReadyError,
    ServerUnavailableError,
    refused_by_one_server,
)


@dataclass(frozen=True)
class RetryPolicy:
    """Retries, with exponential backoff, of a request that found the server unavailable or the model reloading.

    Other errors (an invalid input, a wrong model name, a passed deadline) would fail again. ``attempts``
    counts the first try: ``RetryPolicy(attempts=1)`` never retries.
    """

    attempts: int = 3
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 2.0
    multiplier: float = 2.0
    # Each wait is drawn from [backoff × (1 − jitter), backoff]: clients failing together do not retry in lockstep.
    jitter: float = 0.5
    # A client balancing over several servers (``round_robin``) resends a call that one server turned away
    # (stopping, or its model not ready: ``_errors.refused_by_one_server``) at once, up to this many times,
    # before the backoff above: each resend goes to the next server, and under concurrent calls it lands on
    # the refusing one again with a probability of about 1 / servers. Then the attempts above apply.
    failovers: int = 32

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1; got {self.attempts}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be within [0, 1]; got {self.jitter}")
        if self.failovers < 0:
            raise ValueError(f"failovers must be at least 0; got {self.failovers}")

    def backoff_s(self, retry: int) -> float:
        """The wait before retry number ``retry`` (1 for the first retry)."""
        backoff = min(self.initial_backoff_s * self.multiplier ** (retry - 1), self.max_backoff_s)
        return backoff * (1 - self.jitter * random.random())


class Deadline:
    """A point in time a whole call must finish by; None means no deadline."""

    def __init__(self, timeout_s: float | None) -> None:
        if timeout_s is not None and timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive; got {timeout_s}")
        self.timeout_s = timeout_s
        self._end = None if timeout_s is None else time.monotonic() + timeout_s

    def remaining_s(self) -> float | None:
        """Seconds left for the next RPC; ``DeadlineExceededError`` when none are."""
        if self._end is None:
            return None
        left = self._end - time.monotonic()
        if left <= 0:
            raise DeadlineExceededError(f"the call's deadline of {self.timeout_s:g} s passed")
        return left

    def allows_wait(self, seconds: float) -> bool:
        return self._end is None or time.monotonic() + seconds < self._end


def next_step(
    error: ClassifierError, tries: int, policy: RetryPolicy, deadline: Deadline, *, retry_not_ready: bool = True
) -> float | ClassifierError:
    """After ``error`` on try number ``tries``: the seconds to wait before the next try, or the error to raise.

    ``retry_not_ready`` is False for the first call, which reads the model's config: a model missing then is a
    wrong name (or a server still loading: see ``ready_timeout_s``), to hear at once, not after every retry.
    """
    if isinstance(error, ServerUnavailableError) and not deadline.allows_wait(0):
        # Triton drops a queued request whose timeout (the call's deadline, sent with it) passed.
        message = f"the call's deadline of {deadline.timeout_s:g} s passed: {error.message}"
        return DeadlineExceededError(message, status=error.status)
    retried = isinstance(error, ServerUnavailableError) or (retry_not_ready and isinstance(error, ModelNotReadyError))
    if not retried or tries >= policy.attempts:
        return error
    wait = policy.backoff_s(tries)
    return wait if deadline.allows_wait(wait) else error


def fails_over(error: ClassifierError, failovers: int, policy: RetryPolicy, deadline: Deadline) -> bool:
    """Whether a balancing client resends ``error``'s call to the next server at once (``failovers`` so far)."""
    return failovers < policy.failovers and deadline.allows_wait(0) and refused_by_one_server(error)
