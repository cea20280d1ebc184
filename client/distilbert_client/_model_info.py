"""What the client and the server must agree on, read from the server's model config.

The served model publishes its facts as config ``parameters`` (string values):
``problem_type``, ``max_sequence_length``, ``vocab_size``, ``num_labels`` and ``labels``
(a JSON list). Input and output names, their data types and ``max_batch_size`` come from
the config itself. Nothing here is a constant of the client: point it at another
checkpoint and it adapts, or refuses a tokenizer that cannot feed it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from ._errors import IncompatibleModelError
from ._results import PROBLEM_TYPES, REGRESSION, SINGLE_LABEL

__all__ = ["ModelInfo", "ServedInput", "check_tokenizer"]

# Tokenizers that declare no limit report a huge model_max_length (int(1e30)).
_UNSET_MAX_LENGTH = 1_000_000

_DTYPES = {"TYPE_INT64": ("INT64", np.int64), "TYPE_INT32": ("INT32", np.int32)}


@dataclass(frozen=True)
class ServedInput:
    """One token input of the served model."""

    name: str
    datatype: str  # Triton's name, e.g. "INT64"
    optional: bool

    @property
    def numpy_dtype(self) -> type:
        return next(dtype for name, dtype in _DTYPES.values() if name == self.datatype)


@dataclass(frozen=True)
class ModelInfo:
    """The served model as the client needs it."""

    name: str
    max_batch_size: int
    inputs: tuple[ServedInput, ...]
    outputs: tuple[str, ...]
    problem_type: str
    labels: tuple[str, ...]
    max_sequence_length: int | None
    vocab_size: int | None

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.inputs)

    @property
    def has_attention_mask(self) -> bool:
        return "attention_mask" in self.input_names

    @property
    def scores_output(self) -> str:
        """The output holding each label's score; every served model has it (checked on load)."""
        return "probabilities"

    @classmethod
    def from_config(cls, config: dict) -> ModelInfo:
        """From ``get_model_config(..., as_json=True)`` (with or without its ``config`` wrapper)."""
        config = config.get("config", config)
        name = config.get("name", "")
        params = {key: value.get("string_value", "") for key, value in config.get("parameters", {}).items()}

        inputs = []
        for spec in config.get("input", []):
            data_type = spec.get("data_type", "TYPE_INT64")
            if data_type not in _DTYPES:
                raise IncompatibleModelError(
                    f"model {name!r} input {spec['name']!r} has data type {data_type}; token ids must be INT64 or INT32"
                )
            inputs.append(ServedInput(spec["name"], _DTYPES[data_type][0], bool(spec.get("optional", False))))
        outputs = tuple(spec["name"] for spec in config.get("output", []))
        if "input_ids" not in {i.name for i in inputs}:
            raise IncompatibleModelError(f"model {name!r} has no 'input_ids' input; inputs: {[i.name for i in inputs]}")
        missing = [output for output in ("logits", "probabilities") if output not in outputs]
        if missing:
            # The server computes the scores ("probabilities"); the client reads them, it never recomputes them.
            raise IncompatibleModelError(
                f"model {name!r} has no {' or '.join(map(repr, missing))} output (outputs: {list(outputs)}): "
                "serve a model exported by build/export.py"
            )

        num_labels = _int(params.get("num_labels"))
        if num_labels is None:
            logits_spec = next(spec for spec in config["output"] if spec["name"] == "logits")
            num_labels = int(logits_spec["dims"][-1])
        labels = tuple(json.loads(params["labels"])) if params.get("labels") else ()
        if not labels:
            # transformers' own default names for a checkpoint without id2label.
            labels = tuple(f"LABEL_{i}" for i in range(num_labels))
        if len(labels) != num_labels:
            raise IncompatibleModelError(f"model {name!r} publishes {len(labels)} labels for {num_labels} outputs")
        problem_type = params.get("problem_type") or (REGRESSION if num_labels == 1 else SINGLE_LABEL)
        if problem_type not in PROBLEM_TYPES:
            raise IncompatibleModelError(f"model {name!r} has unknown problem_type {problem_type!r}")

        return cls(
            name=name,
            # 0 means the model takes no batch dimension: one row per request.
            max_batch_size=max(int(config.get("max_batch_size", 0)), 1),
            inputs=tuple(inputs),
            outputs=outputs,
            problem_type=problem_type,
            labels=labels,
            max_sequence_length=_int(params.get("max_sequence_length")),
            vocab_size=_int(params.get("vocab_size")),
        )


def _int(value: str | None) -> int | None:
    return int(value) if value not in (None, "") else None


def check_tokenizer(info: ModelInfo, tokenizer) -> int:
    """The truncation length to use, or ``IncompatibleModelError`` saying what disagrees.

    A tokenizer whose vocabulary differs from the model's maps text to the wrong ids (or
    to ids the model does not have); one that allows longer sequences than the model's
    position embeddings produces inputs the server must reject.
    """
    source = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
    vocab = len(tokenizer)
    if info.vocab_size is not None and vocab != info.vocab_size:
        raise IncompatibleModelError(
            f"tokenizer {source!r} has a vocabulary of {vocab} tokens but model {info.name!r} was trained with "
            f"{info.vocab_size}: use the tokenizer saved with the served checkpoint"
        )
    produced = set(getattr(tokenizer, "model_input_names", ("input_ids", "attention_mask")))
    missing = [i.name for i in info.inputs if not i.optional and i.name not in produced]
    if missing:
        raise IncompatibleModelError(
            f"model {info.name!r} requires input(s) {missing} that tokenizer {source!r} does not produce "
            f"(it produces {sorted(produced)})"
        )
    declared = int(getattr(tokenizer, "model_max_length", _UNSET_MAX_LENGTH) or _UNSET_MAX_LENGTH)
    served = info.max_sequence_length
    if declared >= _UNSET_MAX_LENGTH:
        if served is None:
            raise IncompatibleModelError(
                f"neither tokenizer {source!r} nor model {info.name!r} says how long a sequence may be"
            )
        return served
    if served is not None and declared > served:
        raise IncompatibleModelError(
            f"tokenizer {source!r} allows sequences of {declared} tokens but model {info.name!r} takes at most "
            f"{served}: use the tokenizer saved with the served checkpoint"
        )
    return declared
