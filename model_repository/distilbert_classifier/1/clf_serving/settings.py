"""The model's ``config.pbtxt`` ``parameters``, read once into a frozen value object.

Two kinds of parameters live there. Tuning knobs (``precision``, ``cpu_threads``, ``forward_mode``,
``forward_overhead_tokens``, ``attention_overhead_tokens``, ``max_forward_tokens``,
``checkpoint``) are read by the
model. Facts about the checkpoint (``problem_type``, ``max_sequence_length``,
``vocab_size``, ``num_labels``, ``labels``) are written by ``build/export.py`` so that
any client can learn them from the model config; the model checks them against the
checkpoint it loads and refuses to start on a mismatch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

PRECISIONS = ("fp32", "bf16", "fp16")
# packed: dense layers on real tokens only (clf_serving/packed.py); padded: the transformers
# model on length-sorted padded chunks, kept as the reference path and for comparison.
FORWARD_MODES = ("packed", "padded")


@dataclass(frozen=True)
class ServingSettings:
    checkpoint: str = "checkpoint"
    precision: str = "fp32"
    cpu_threads: int = 0
    forward_mode: str = "packed"
    forward_overhead_tokens: int = 16
    attention_overhead_tokens: int = 64
    max_forward_tokens: int = 8192
    # Facts about the checkpoint, as published to clients (None: not published).
    problem_type: str | None = None
    max_sequence_length: int | None = None
    vocab_size: int | None = None
    num_labels: int | None = None
    labels: tuple[str, ...] | None = None


def parameter_values(model_config: dict) -> dict[str, str]:
    """``parameters { key: "k" value { string_value: "v" } }`` as a plain dict."""
    return {key: value["string_value"] for key, value in model_config.get("parameters", {}).items()}


def read_settings(model_config: dict) -> ServingSettings:
    values = parameter_values(model_config)

    def integer(name: str, default: int | None) -> int | None:
        if name not in values:
            return default
        try:
            return int(values[name])
        except ValueError:
            raise ValueError(f"parameter {name} must be an integer; got {values[name]!r}") from None

    precision = values.get("precision", "fp32").lower()
    if precision not in PRECISIONS:
        raise ValueError(f"parameter precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    forward_mode = values.get("forward_mode", "packed").lower()
    if forward_mode not in FORWARD_MODES:
        raise ValueError(f"parameter forward_mode must be one of {', '.join(FORWARD_MODES)}; got {forward_mode!r}")
    labels = tuple(json.loads(values["labels"])) if "labels" in values else None
    return ServingSettings(
        checkpoint=values.get("checkpoint", "checkpoint"),
        precision=precision,
        cpu_threads=integer("cpu_threads", 0),
        forward_mode=forward_mode,
        forward_overhead_tokens=integer("forward_overhead_tokens", 16),
        attention_overhead_tokens=integer("attention_overhead_tokens", 64),
        max_forward_tokens=integer("max_forward_tokens", 8192),
        problem_type=values.get("problem_type"),
        max_sequence_length=integer("max_sequence_length", None),
        vocab_size=integer("vocab_size", None),
        num_labels=integer("num_labels", None),
        labels=labels,
    )
