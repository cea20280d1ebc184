"""Check one text request: its strings, its optional pairs and its tokenization options.

Every rule raises ``InvalidText`` with a message that names the input and row, says what was
wrong and how to fix it; ``model.py`` returns it to the caller as ``INVALID_ARGUMENT``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..knobs import ConfigError, read_knobs
from .settings import TokenizeOptions


class InvalidText(ValueError):
    """A text request that cannot be served as sent; the message is returned to the caller."""


@dataclass(frozen=True)
class TextItem:
    """One row of a request: a text, maybe a second text of a pair, and its options."""

    text: str
    pair: str | None
    options: TokenizeOptions


def parse_options(parameters: dict, default: TokenizeOptions) -> TokenizeOptions:
    """Request parameters ``truncation`` and ``truncation_side`` over the config's defaults.

    They are the model's knobs (``settings.TokenizeOptions``), parsed as the config parameters are;
    other request parameters are not this model's and are left alone.
    """
    try:
        return replace(default, **read_knobs(TokenizeOptions, parameters))
    except ConfigError as error:
        raise InvalidText(f"request {error}") from None


def decode_strings(name: str, array: np.ndarray) -> list[str]:
    """A ``[rows, 1]`` BYTES tensor as one ``str`` per row: UTF-8, not empty or blank."""
    if array.ndim != 2 or array.shape[1] != 1:
        raise InvalidText(f"{name} must have shape [batch, 1], one string per row; got shape {list(array.shape)}")
    if array.shape[0] == 0:
        raise InvalidText(f"{name} holds no strings (batch size 0)")
    strings = []
    for row, value in enumerate(array[:, 0]):
        if isinstance(value, str):
            text = value
        else:
            try:
                text = bytes(value).decode("utf-8")
            except UnicodeDecodeError as error:
                raise InvalidText(
                    f"{name}[{row}] is not valid UTF-8 ({error.reason} at byte {error.start}); send UTF-8 encoded text"
                ) from None
        if not text.strip():
            raise InvalidText(f"{name}[{row}] is empty or only whitespace; send at least one word")
        strings.append(text)
    return strings


def request_items(text: np.ndarray | None, pair: np.ndarray | None, options: TokenizeOptions) -> list[TextItem]:
    """The rows of one request, or ``InvalidText``."""
    if text is None:
        raise InvalidText("text is required: a BYTES tensor of shape [batch, 1], one UTF-8 string per row")
    texts = decode_strings("text", text)
    if pair is None:
        return [TextItem(t, None, options) for t in texts]
    pairs = decode_strings("text_pair", pair)
    if len(pairs) != len(texts):
        raise InvalidText(f"text_pair has {len(pairs)} row(s) but text has {len(texts)}; send one pair per text")
    return [TextItem(t, p, options) for t, p in zip(texts, pairs, strict=True)]
