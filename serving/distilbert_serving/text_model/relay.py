"""The token model's errors, passed on to the text model's callers with the status they mean."""

from __future__ import annotations

from .outcomes import DEADLINE_PARAMETER

# Triton's own refusals of a request (its queue is full; it waited its queue timeout). A BLS call
# gets them as an error with status INTERNAL or none (Triton 2.51), while a direct call gets
# UNAVAILABLE: the status that tells the caller (and the client library's retries) to come back.
REFUSALS = ("Exceeds maximum queue size", "Request timeout expired")


def relayed_error(pb_utils, model: str, message: str, code=None):
    """A ``TritonError`` for the text request: the token model's ``message`` and status ``code``;
    UNAVAILABLE when it is one of Triton's refusals."""
    if any(phrase in message for phrase in REFUSALS):
        code = getattr(pb_utils.TritonError, "UNAVAILABLE", code)  # older Python backends have no codes
    return pb_utils.TritonError(f"{model}: {message}", *(() if code is None else (code,)))


def deadline_arguments(deadline_s: float | None, now_s: float) -> dict:
    """``InferenceRequest`` arguments that give the token model its callers' deadline (Unix seconds), as the
    client library gives it: Triton's ``timeout`` and the stamp ``DEADLINE_PARAMETER``; none without one."""
    if deadline_s is None:
        return {}
    left_us = max(int((deadline_s - now_s) * 1e6), 1)
    return {"timeout": left_us, "parameters": {DEADLINE_PARAMETER: int(deadline_s * 1e3)}}
