"""What the client and the server must agree on, read from the served model's config, not assumed.

The model publishes ``problem_type``, ``max_sequence_length``, ``vocab_size``, ``num_labels`` and ``labels``
(JSON) as config ``parameters``; inputs, outputs and ``max_batch_size`` are the config's own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar

from tritonclient.utils import triton_to_np_dtype

from distilbert_serving.contract import LOGITS, SCORES, resolve_problem_type

from ._errors import IncompatibleModelError

# Tokenizers that declare no limit report a huge model_max_length (int(1e30)).
_UNSET_MAX_LENGTH = 1_000_000
_USE_ITS_TOKENIZER = "use the tokenizer saved with the served checkpoint"


@dataclass(frozen=True)
class ServedInput:
    """One token input of the served model; ``datatype`` is Triton's name, e.g. ``"INT64"``."""

    name: str
    datatype: str
    optional: bool

    @property
    def numpy_dtype(self) -> type:
        return triton_to_np_dtype(self.datatype)


@dataclass(frozen=True)
class ModelInfo:
    """The served model as the client needs it."""

    # The output holding each label's score: every served model has it (``from_config`` checks).
    scores_output: ClassVar[str] = SCORES

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

    @classmethod
    def from_config(cls, config: dict) -> ModelInfo:
        """From ``get_model_config(..., as_json=True)`` (with or without its ``config`` wrapper)."""
        config = config.get("config", config)
        name = config.get("name", "")
        params = {key: value.get("string_value", "") for key, value in config.get("parameters", {}).items()}
        inputs = []
        for spec in config.get("input", []):
            if (data_type := spec.get("data_type", "TYPE_INT64")) not in ("TYPE_INT64", "TYPE_INT32"):
                raise IncompatibleModelError(
                    f"model {name!r} input {spec['name']!r} has data type {data_type}; token ids must be INT64 or INT32"
                )
            inputs.append(ServedInput(spec["name"], data_type.removeprefix("TYPE_"), bool(spec.get("optional", False))))
        outputs = tuple(spec["name"] for spec in config.get("output", []))
        if "input_ids" not in {i.name for i in inputs}:
            raise IncompatibleModelError(f"model {name!r} has no 'input_ids' input; inputs: {[i.name for i in inputs]}")
        if missing := [output for output in (LOGITS, cls.scores_output) if output not in outputs]:
            # The server computes the scores; the client reads them, it never recomputes them.
            raise IncompatibleModelError(
                f"model {name!r} has no {' or '.join(map(repr, missing))} output (outputs: {list(outputs)}): "
                "serve a model exported by build/export.py"
            )
        num_labels, max_length, vocab_size = (
            int(params[key]) if params.get(key) else None for key in ("num_labels", "max_sequence_length", "vocab_size")
        )
        if num_labels is None:
            num_labels = int(next(spec for spec in config["output"] if spec["name"] == LOGITS)["dims"][-1])
        # Without published labels: transformers' own default names for a checkpoint without id2label.
        labels = tuple(json.loads(params.get("labels") or "[]")) or tuple(f"LABEL_{i}" for i in range(num_labels))
        if len(labels) != num_labels:
            raise IncompatibleModelError(f"model {name!r} publishes {len(labels)} labels for {num_labels} outputs")
        try:
            problem_type = resolve_problem_type(params.get("problem_type"), num_labels)
        except ValueError as error:
            raise IncompatibleModelError(f"model {name!r}: {error}") from None
        batch = max(int(config.get("max_batch_size", 0)), 1)  # 0: no batch dimension, one row a request
        return cls(name, batch, tuple(inputs), outputs, problem_type, labels, max_length, vocab_size)


def check_tokenizer(info: ModelInfo, tokenizer) -> int:
    """The truncation length to use, or ``IncompatibleModelError`` saying what disagrees.

    Another vocabulary maps text to the wrong ids; a longer maximum produces inputs the server must reject.
    """
    source = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
    if info.vocab_size is not None and len(tokenizer) != info.vocab_size:
        raise IncompatibleModelError(
            f"tokenizer {source!r} has a vocabulary of {len(tokenizer)} tokens but model {info.name!r} was trained "
            f"with {info.vocab_size}: {_USE_ITS_TOKENIZER}"
        )
    produced = set(getattr(tokenizer, "model_input_names", ("input_ids", "attention_mask")))
    if missing := [i.name for i in info.inputs if not i.optional and i.name not in produced]:
        raise IncompatibleModelError(
            f"model {info.name!r} requires input(s) {missing} that tokenizer {source!r} does not produce "
            f"(it produces {sorted(produced)})"
        )
    declared = int(getattr(tokenizer, "model_max_length", _UNSET_MAX_LENGTH) or _UNSET_MAX_LENGTH)
    served = info.max_sequence_length
    if declared >= _UNSET_MAX_LENGTH and served is None:
        raise IncompatibleModelError(
            f"neither tokenizer {source!r} nor model {info.name!r} says how long a sequence may be"
        )
    if declared < _UNSET_MAX_LENGTH and served is not None and declared > served:
        raise IncompatibleModelError(
            f"tokenizer {source!r} allows sequences of {declared} tokens but model {info.name!r} takes at most "
            f"{served}: {_USE_ITS_TOKENIZER}"
        )
    return served if declared >= _UNSET_MAX_LENGTH else declared
