"""The wire contract between the served models and their callers, imported by both sides.

What a request may carry, what an answer holds, what a checkpoint's ``problem_type`` means and
why a request is refused. The models (``distilbert_serving.token_model``, ``.text_model``) and the
client library (``distilbert_client``) read these names from here, so neither side restates them.
This module imports nothing beyond the standard library: the client installs without torch.

Refusals. Every error the models answer on their own starts with ``[<reason>]``, one of
``Reason``; a caller tells them apart by that tag (``reason_of``) and the gRPC status, never by
the words after it. Triton's own refusals carry no tag; ``TRITON_REFUSALS`` names the phrases of
its messages that identify them.
"""

from __future__ import annotations

import hashlib
import json
import re
from enum import Enum
from pathlib import Path

# Inputs. The token model takes token ids (and an optional mask); the text model takes strings.
INPUT_IDS, ATTENTION_MASK = "input_ids", "attention_mask"
TEXT, TEXT_PAIR = "text", "text_pair"

# Outputs. ``probabilities`` holds the scores of ``problem_type`` (softmax, sigmoid or the value);
# ``label`` (text model only) is the top label's name.
LOGITS, SCORES, LABEL = "logits", "probabilities", "label"
TOKEN_OUTPUTS = (LOGITS, SCORES)
TEXT_OUTPUTS = (LOGITS, SCORES, LABEL)

# Request parameters. The caller's deadline, in milliseconds since the Unix epoch: a model answers
# a request whose answer could not come before it ``[expired]`` instead of working on it.
DEADLINE_PARAMETER = "deadline_unix_ms"
# The text model's request options (defaults in its config.pbtxt): how an over-long text is cut.
TRUNCATION, TRUNCATION_SIDE = "truncation", "truncation_side"

# What a score means: the checkpoint's ``config.problem_type``, published in the model config.
SINGLE_LABEL = "single_label_classification"
MULTI_LABEL = "multi_label_classification"
REGRESSION = "regression"
PROBLEM_TYPES = (SINGLE_LABEL, MULTI_LABEL, REGRESSION)


def resolve_problem_type(problem_type: str | None, num_labels: int) -> str:
    """The checkpoint's problem type; when unset, transformers' own inference rule.

    At training time transformers picks regression for one label and otherwise looks at the label
    dtype, which a server never sees; an unset multi-label checkpoint is therefore served as
    single-label (softmax). Set ``problem_type`` to be explicit.
    """
    if not problem_type:
        return REGRESSION if num_labels == 1 else SINGLE_LABEL
    if problem_type not in PROBLEM_TYPES:
        raise ValueError(f"unknown problem_type {problem_type!r}; expected one of {', '.join(PROBLEM_TYPES)}")
    return problem_type


# Which tokenizer a checkpoint was trained with, published in the model config (parameter ``tokenizer_sha256``):
# every version of one model must tokenize alike, since its callers (and the text model) tokenize once for all.
TOKENIZER_PARTS = ("normalizer", "pre_tokenizer", "model", "post_processor", "added_tokens")


def tokenizer_fingerprint(folder: Path) -> str | None:
    """A SHA-256 of what decides the token ids of the checkpoint ``folder``'s tokenizer; None without one.

    From ``tokenizer.json``'s parts that map text to ids (not its formatting or save-time fields),
    else from ``vocab.txt``.
    """
    folder = Path(folder)
    if (fast := folder / "tokenizer.json").is_file():
        spec = json.loads(fast.read_text(encoding="utf-8"))
        data = json.dumps({part: spec.get(part) for part in TOKENIZER_PARTS}, sort_keys=True).encode()
    elif (vocab := folder / "vocab.txt").is_file():
        data = vocab.read_bytes()
    else:
        return None
    return hashlib.sha256(data).hexdigest()


class Reason(str, Enum):
    """Why a model refused a request: the tag its error message starts with."""

    INVALID_INPUT = "invalid_input"  # status INVALID_ARGUMENT: the request itself is wrong; never retried
    EXPIRED = "expired"  # CANCELLED: its deadline comes before its answer could; a retry would fail too
    CANCELLED = "cancelled"  # CANCELLED: its caller cancelled the call
    FORWARD_FAILED = "forward_failed"  # INTERNAL: the forward pass failed (e.g. out of memory)


def tagged(reason: Reason, message: str) -> str:
    """``message`` as a model sends it: tagged with ``reason``."""
    return f"[{reason.value}] {message}"


_TAG = re.compile(r"\[([a-z_]+)\] ")


def reason_of(message: str) -> Reason | None:
    """The ``Reason`` a model's error message is tagged with, or None (Triton's own errors and others).

    The tag may follow a model name (the text model relays the token model's errors as
    ``<model>: <message>``).
    """
    match = _TAG.search(message)
    try:
        return Reason(match.group(1)) if match else None
    except ValueError:
        return None


# Triton's own refusals, which no model can tag: the phrases of its messages that identify them.
TRITON_REFUSALS = {
    # UNAVAILABLE: the server got SIGTERM; it finishes what it holds and takes nothing new (Triton 2.51,
    # measured: then, while it unloads its models, "has no available versions" until its ports close).
    "stopping": ("Server is stopping",),
    # UNAVAILABLE (a direct call) or INTERNAL (through BLS): its queue is full or a request waited too long.
    "overloaded": ("Exceeds maximum queue size", "Request timeout expired"),
    # UNAVAILABLE: the model has no loaded version (loading, unloading, or unknown).
    "model_not_ready": ("unknown model", "no available versions", "is not ready", "not found"),
    # INTERNAL: the model's Python process died; the server is restarted (launcher watchdog, liveness probe).
    "dead_stub": ("stub process", "is not healthy"),
}


def triton_refusal(message: str) -> str | None:
    """Which of ``TRITON_REFUSALS`` ``message`` is (a key), or None."""
    lowered = message.lower()
    for refusal, phrases in TRITON_REFUSALS.items():
        found = [phrase.lower() in lowered for phrase in phrases]
        if all(found) if refusal == "dead_stub" else any(found):
            return refusal
    return None
