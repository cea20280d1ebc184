"""The text model's ``config.pbtxt`` ``parameters``, read once into a frozen value object.

``classifier_model`` and ``tokenizer`` say where the work goes: the token model that this
model calls (BLS) and the folder, relative to the model repository, holding the tokenizer of
that model's checkpoint. ``truncation`` and ``truncation_side`` are the defaults a request
may override with request parameters of the same names. The checkpoint facts
(``max_sequence_length``, ``num_labels``, ``labels``) are written by ``build/export.py`` from
the same checkpoint as the token model; ``model.py`` checks them against the tokenizer's
``config.json`` and refuses to load on a mismatch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .validation import SIDES, parse_bool


@dataclass(frozen=True)
class TextSettings:
    classifier_model: str
    tokenizer: str
    max_sequence_length: int
    labels: tuple[str, ...]
    truncation: bool = True
    truncation_side: str = "right"
    # Rows per BLS request: the token model's max_batch_size.
    classifier_max_batch_size: int = 64


def parameter_values(model_config: dict) -> dict[str, str]:
    return {key: value["string_value"] for key, value in model_config.get("parameters", {}).items()}


def read_text_settings(model_config: dict) -> TextSettings:
    values = parameter_values(model_config)
    missing = [k for k in ("classifier_model", "tokenizer", "max_sequence_length", "labels") if k not in values]
    if missing:
        raise ValueError(f"config.pbtxt lacks parameter(s) {', '.join(missing)}; re-run build/export.py")
    side = values.get("truncation_side", "right")
    if side not in SIDES:
        raise ValueError(f"parameter truncation_side must be one of {', '.join(SIDES)}; got {side!r}")
    return TextSettings(
        classifier_model=values["classifier_model"],
        tokenizer=values["tokenizer"],
        max_sequence_length=int(values["max_sequence_length"]),
        labels=tuple(json.loads(values["labels"])),
        truncation=parse_bool("truncation", values.get("truncation", "true")),
        truncation_side=side,
        classifier_max_batch_size=int(values.get("classifier_max_batch_size", "64")),
    )
