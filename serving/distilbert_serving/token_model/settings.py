"""The model's ``config.pbtxt`` ``parameters``: each defined once here, read once into a frozen value object.

Two kinds of parameters live there. The knobs (``ServingKnobs``: name, type, default, allowed values
and doc in one field each) tune the model; ``build/export.py`` derives its command-line options and
the parameters it writes from them. The rest are written by export, not tuned: where the
checkpoint is (``checkpoint``) and facts about it (``problem_type``, ``max_sequence_length``,
``vocab_size``, ``num_labels``, ``labels``) that any client can learn from the model config;
the model checks the facts against the checkpoint it loads and refuses to start on a mismatch.

A value the model cannot serve with raises ``ConfigError``, at export (``check_settings``) and
again at load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..knobs import ConfigError, check_knobs, knob, parameter_values, read_knobs
from .precision import AUTO, CHOICES, PRECISIONS

# packed: dense layers on real tokens only (packed.py); padded: the transformers
# model on length-sorted padded chunks, kept as the reference path and for comparison.
FORWARD_MODES = ("packed", "varlen", "padded")


@dataclass(frozen=True)
class ServingKnobs:
    """The model's knobs; their defaults are what ``make serve`` uses (see README)."""

    # auto: each instance picks at load from the hardware it lands on (precision.py): one repository
    # serves bf16 on GPUs and AMX CPUs and exact fp32 elsewhere.
    precision: str = knob(
        AUTO,
        "dtype of weights and activations: auto (each instance: bf16 on GPUs of compute capability 8.0+ and on "
        "CPUs with AMX, fp16 on older GPUs, fp32 elsewhere); fp32 (exact); bf16; fp16 (GPUs only); int8 (CPUs "
        "only): the encoder's linear layers in int8, activations quantized per token",
        choices=CHOICES,
    )
    cpu_threads: int = knob(
        0, "torch threads per CPU instance; 0: the cores, shared among the instances busy at each layer", minimum=0
    )
    forward_mode: str = knob(
        "packed",
        "packed: dense layers on real tokens only, attention in length-sorted chunks; varlen: the same dense "
        "layers, attention in one variable-length call per layer (CUDA's flash/memory-efficient kernels); "
        "padded: transformers' forward",
        choices=FORWARD_MODES,
    )
    forward_overhead_tokens: int = knob(
        16, "fixed cost of one padded forward, in padded tokens (forward_mode padded)", minimum=0
    )
    attention_overhead_tokens: int = knob(
        64, "fixed cost of one attention chunk, in padded tokens (forward_mode packed)", minimum=0
    )
    max_forward_tokens: int = knob(8192, "tokens in one forward at most: its memory bound", minimum=1)
    # Under overload the requests whose callers gave up are the work to drop first (docs/RELIABILITY.md).
    # The callers' deadline stamps need clocks that agree to well within the deadlines (NTP does).
    drop_cancelled: bool = knob(
        True,
        "answer a request CANCELLED before its forward pass when its caller cancelled it, its gRPC deadline "
        "passed, or its caller's deadline stamp comes before the forward would end",
    )


@dataclass(frozen=True)
class ServingSettings(ServingKnobs):
    """What the model reads at load: its knobs, and what export wrote about the checkpoint."""

    # Folder inside the version folder that holds the checkpoint (export copies it there).
    checkpoint: str = "checkpoint"
    # Facts about the checkpoint, as published to clients (None: not published).
    problem_type: str | None = None
    max_sequence_length: int | None = None
    vocab_size: int | None = None
    num_labels: int | None = None
    labels: tuple[str, ...] | None = None
    tokenizer_sha256: str | None = None  # contract.tokenizer_fingerprint of the checkpoint's tokenizer


def check_settings(knobs: ServingKnobs, instance_kind: str) -> None:
    """``ConfigError`` for a value or combination the model cannot serve with.

    ``instance_kind`` is where the instance runs, ``cpu`` or ``gpu``; at export it may be ``auto``
    (Triton decides at load, where this runs again with the kind it chose).
    """
    check_knobs(knobs)
    precision, kind = PRECISIONS.get(knobs.precision), instance_kind.lower()
    if precision and kind in ("cpu", "gpu") and kind not in precision.kinds:
        (other,) = set(precision.kinds)
        need = "needs a GPU instance" if other == "gpu" else "runs on CPU instances only"
        raise ConfigError(
            f"precision {precision.name} {need} (export --kind {other}); use {AUTO}, bf16 or fp32 on a {kind} instance"
        )
    if precision and precision.gemm and knobs.forward_mode == "padded":
        raise ConfigError("precision int8 quantizes the packed forward's layers: use forward_mode packed")


def cpu_instances(model_config: dict) -> int:
    """Instances of the model that may run on the CPU (all but ``KIND_GPU`` groups), which share its cores."""
    groups = model_config.get("instance_group", [])
    return sum(int(group.get("count", 1)) for group in groups if group.get("kind") != "KIND_GPU")


def read_settings(model_config: dict) -> ServingSettings:
    """The ``parameters`` of a model config (as Triton passes it to ``initialize``), or ``ConfigError``."""
    values = parameter_values(model_config)
    written = {name: values[name] for name in ("checkpoint", "problem_type", "tokenizer_sha256") if name in values}
    for name in ("max_sequence_length", "vocab_size", "num_labels"):
        if name in values:
            written[name] = _integer(name, values[name])
    if "labels" in values:
        try:
            written["labels"] = tuple(json.loads(values["labels"]))
        except (TypeError, ValueError):
            raise ConfigError(f"parameter labels must be a JSON list; got {values['labels']!r}") from None
    return ServingSettings(**read_knobs(ServingKnobs, values), **written)


def _integer(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"parameter {name} must be an integer; got {text!r}") from None
