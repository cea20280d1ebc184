"""The token model's errors, passed on to the text model's callers with the status they mean."""

from __future__ import annotations

from ..contract import DEADLINE_PARAMETER, triton_refusal


def relayed_error(pb_utils, model: str, message: str, code=None):
    """A ``TritonError`` for the text request: the token model's ``message`` and status ``code``.

    Triton's overload refusals reach a BLS call with status INTERNAL or none (Triton 2.51), while a
    direct call gets UNAVAILABLE, the status that tells the caller (and the client library's
    retries) to come back: they are relayed as UNAVAILABLE.
    """
    if triton_refusal(message) == "overloaded":
        code = getattr(pb_utils.TritonError, "UNAVAILABLE", code)  # older Python backends have no codes
    return pb_utils.TritonError(f"{model}: {message}", *(() if code is None else (code,)))


def deadline_arguments(deadline_s: float | None, now_s: float) -> dict:
    """``InferenceRequest`` arguments that give the token model its callers' deadline (Unix seconds), as the
    client library gives it: Triton's ``timeout`` and the stamp ``DEADLINE_PARAMETER``; none without one."""
    if deadline_s is None:
        return {}
    left_us = max(int((deadline_s - now_s) * 1e6), 1)
    return {"timeout": left_us, "parameters": {DEADLINE_PARAMETER: int(deadline_s * 1e3)}}
