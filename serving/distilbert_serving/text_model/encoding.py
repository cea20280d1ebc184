"""Tokenize the rows of every request of an execute with as few fast-tokenizer calls as possible.

Rows are grouped by what changes the tokenizer's behaviour (pair or single, truncation on or
off, truncation side); each group is one batched call (the Rust tokenizer encodes a batch in
one go). Results come back in row order. A row longer than the model's maximum with truncation
off is reported per row, so only its own request fails (``tokenize_requests``).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from ..knobs import ConfigError
from ..outcomes import row_spans
from .batching import all_rows
from .settings import TokenizeOptions
from .validation import InvalidText, TextItem

WARMUP = (
    ("The service answered every well-formed request.", None),
    ("Is this a question?", "A text pair is tokenized as one sequence with two segments."),
)


class TooLong(ValueError):
    """A row with truncation off that is longer than the model's maximum length."""

    def __init__(self, tokens: int, max_length: int, is_pair: bool):
        self.tokens, self.max_length, self.is_pair = tokens, max_length, is_pair
        super().__init__(self.message(0))

    def message(self, row: int) -> str:
        what = f"text[{row}] and text_pair[{row}] together are" if self.is_pair else f"text[{row}] is"
        return (
            f"{what} {self.tokens} tokens long, over the model's maximum of {self.max_length}; "
            "shorten it or send request parameter truncation=true"
        )


def encode_items(tokenizer, items: list[TextItem], max_length: int) -> list[list[int] | TooLong]:
    """Token ids (special tokens included) per item, or ``TooLong`` for an over-long untruncated row."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    for index, item in enumerate(items):
        groups[(item.pair is not None, item.options.truncation, item.options.truncation_side)].append(index)

    encoded: list = [None] * len(items)
    for (is_pair, truncation, side), indices in groups.items():
        tokenizer.truncation_side = side
        texts = [items[i].text for i in indices]
        pairs = [items[i].pair for i in indices] if is_pair else None
        ids = tokenizer(
            texts,
            pairs,
            truncation="longest_first" if truncation else False,
            max_length=max_length if truncation else None,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]
        for index, row in zip(indices, ids, strict=True):
            if len(row) > max_length:
                encoded[index] = TooLong(len(row), max_length, is_pair)
            else:
                encoded[index] = row
    return encoded


def tokenize_requests(tokenizer, entries: list, max_length: int) -> list:
    """Each request's token rows, or its error: ``InvalidText`` for a row too long with truncation off.

    ``entries`` holds each request's ``TextItem`` rows, or its error (kept as is); the rows of all
    requests are tokenized together (``encode_items``).
    """
    encoded = encode_items(tokenizer, all_rows(entries), max_length)
    results = []
    for entry, span in zip(entries, row_spans(entries), strict=True):
        if span is None:
            results.append(entry)
            continue
        rows = encoded[span]
        too_long = next(((r, e) for r, e in enumerate(rows) if isinstance(e, TooLong)), None)
        results.append(rows if too_long is None else InvalidText(too_long[1].message(too_long[0])))
    return results


def load_tokenizer(folder):
    """The fast (Rust) tokenizer of the checkpoint in ``folder``, or ``ConfigError``."""
    from transformers import AutoTokenizer
    from transformers.utils import logging

    # "sequence longer than the maximum" warnings: over-long rows are answered with errors instead.
    logging.set_verbosity_error()
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False, local_files_only=True)
    if not tokenizer.is_fast:
        raise ConfigError(f"{folder}: the tokenizer is not a fast (Rust) tokenizer")
    return tokenizer


def warm_up(tokenizer, defaults: TokenizeOptions, max_length: int) -> None:
    """Run the tokenizer on each path once, so the first request does not pay for it.

    Not a ``model_warmup`` in config.pbtxt: Triton refuses every inference, BLS included,
    until the server is ready, so a warmup that reaches the token model fails the load.
    The token model warms its own forward passes.
    """
    options = (defaults, TokenizeOptions(True, "left"), TokenizeOptions(False, "right"))
    items = [TextItem(text, pair, o) for text, pair in WARMUP for o in options]
    encode_items(tokenizer, items * 4, max_length)


def pad_rows(rows: list[list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray | None]:
    """``[rows, longest]`` INT64 ids and a mask (None when every row has the same length)."""
    longest = max(len(row) for row in rows)
    ids = np.full((len(rows), longest), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), longest), dtype=np.int64)
    for r, row in enumerate(rows):
        ids[r, : len(row)] = row
        mask[r, : len(row)] = 1
    return ids, (None if all(len(row) == longest for row in rows) else mask)


def top_labels(logits: np.ndarray, labels: tuple[str, ...]) -> np.ndarray:
    """``[rows, 1]`` BYTES: the name of each row's highest-scoring label."""
    return np.array([[labels[int(i)].encode("utf-8")] for i in np.argmax(logits, axis=-1)], dtype=np.object_)
