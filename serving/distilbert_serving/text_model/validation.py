"""Check one text request: its strings, its optional pairs and its tokenization options.

Every rule raises ``InvalidText`` with a message that names the input and row, says what was
wrong and how to fix it; ``model.py`` returns it to the caller as ``INVALID_ARGUMENT``. Sizes are
checked first, on the bytes as received, before anything is decoded (``TextLimits``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..knobs import ConfigError, read_knobs
from .settings import TextLimits, TokenizeOptions

DEFAULT_LIMITS = TextLimits()


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


def decode_strings(name: str, array: np.ndarray, max_text_bytes: int = DEFAULT_LIMITS.max_text_bytes) -> list[str]:
    """A ``[rows, 1]`` BYTES tensor as one ``str`` per row: at most ``max_text_bytes`` each, UTF-8, not blank."""
    if array.ndim != 2 or array.shape[1] != 1:
        raise InvalidText(f"{name} must have shape [batch, 1], one string per row; got shape {list(array.shape)}")
    if array.shape[0] == 0:
        raise InvalidText(f"{name} holds no strings (batch size 0)")
    for row, size in enumerate(byte_sizes(array)):
        if size > max_text_bytes:
            raise InvalidText(
                f"{name}[{row}] is {size:,} bytes, over the limit of {max_text_bytes:,} bytes per text; send a "
                "shorter text, or raise the text model's parameter max_text_bytes (build/export.py --max-text-bytes)"
            )
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


def byte_sizes(array: np.ndarray) -> list[int]:
    """The size of each string of a BYTES tensor, as sent (UTF-8)."""
    return [len(value.encode("utf-8")) if isinstance(value, str) else len(value) for value in array.reshape(-1)]


def request_items(
    text: np.ndarray | None, pair: np.ndarray | None, options: TokenizeOptions, limits: TextLimits = DEFAULT_LIMITS
) -> list[TextItem]:
    """The rows of one request, or ``InvalidText``."""
    if text is None:
        raise InvalidText("text is required: a BYTES tensor of shape [batch, 1], one UTF-8 string per row")
    total = sum(sum(byte_sizes(array)) for array in (text, pair) if array is not None)
    if total > limits.max_request_bytes:
        raise InvalidText(
            f"the request's texts are {total:,} bytes together, over the limit of {limits.max_request_bytes:,} "
            "bytes per request; send fewer or shorter texts per request, or raise the text model's parameter "
            "max_request_bytes (build/export.py --text-max-request-bytes)"
        )
    texts = decode_strings("text", text, limits.max_text_bytes)
    if pair is None:
        return [TextItem(t, None, options) for t in texts]
    pairs = decode_strings("text_pair", pair, limits.max_text_bytes)
    if len(pairs) != len(texts):
        raise InvalidText(f"text_pair has {len(pairs)} row(s) but text has {len(texts)}; send one pair per text")
    return [TextItem(t, p, options) for t, p in zip(texts, pairs, strict=True)]
