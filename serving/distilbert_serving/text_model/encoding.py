"""Tokenize the rows of every request of an execute with as few fast-tokenizer calls as possible.

Rows are grouped by what changes the tokenizer's behaviour (pair or single, truncation on or
off, truncation side); each group is one batched call (the Rust tokenizer encodes a batch in
one go), plus one for the few texts whose first piece held too few tokens (``bounded``: a long
text is read only as far as the model can use it). Results come back in row order. A row longer
than the model's maximum with truncation off is reported per row, so only its own request fails
(``tokenize_requests``).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from ..knobs import ConfigError
from ..outcomes import row_spans
from .batching import all_rows
from .bounded import Cutter, ends, longer
from .settings import TokenizeOptions
from .validation import InvalidText, TextItem

WARMUP = (
    ("The service answered every well-formed request.", None),
    ("Is this a question?", "A text pair is tokenized as one sequence with two segments."),
)


class TooLong(ValueError):
    """A row with truncation off that is longer than the model's maximum length."""

    def __init__(self, tokens: int, max_length: int, is_pair: bool, exact: bool = True):
        # ``exact`` False: the row has at least ``tokens`` tokens; the rest of it was never read.
        self.tokens, self.max_length, self.is_pair, self.exact = tokens, max_length, is_pair, exact
        super().__init__(self.message(0))

    def message(self, row: int) -> str:
        what = f"text[{row}] and text_pair[{row}] together are" if self.is_pair else f"text[{row}] is"
        count = f"{self.tokens}" if self.exact else f"at least {self.tokens}"
        return (
            f"{what} {count} tokens long, over the model's maximum of {self.max_length}; "
            "shorten it or send request parameter truncation=true"
        )


class TextEncoder:
    """The checkpoint's fast tokenizer, reading only as much of each text as can reach the model.

    ``encode`` gives exactly the ids of the tokenizer's own call on whole texts (``tokenizer(texts,
    pairs, truncation="longest_first", max_length=...)``), but tokenizes only a piece of each long
    text (``bounded``), and refuses a row too long for truncation off without reading all of it.
    """

    def __init__(self, tokenizer, max_length: int):
        self.max_length = max_length
        self.backend = tokenizer.backend_tokenizer
        self.cutter = Cutter.of(tokenizer)

    def encode(self, items: list[TextItem]) -> list[list[int] | TooLong]:
        """Token ids (special tokens included) per item, or ``TooLong`` for an over-long untruncated row."""
        groups: dict[tuple, list[int]] = defaultdict(list)
        for index, item in enumerate(items):
            groups[(item.pair is not None, item.options.truncation, item.options.truncation_side)].append(index)

        encoded: list = [None] * len(items)
        for (is_pair, truncation, side), indices in groups.items():
            rows = [items[i] for i in indices]
            for index, row in zip(indices, self._encode_group(rows, is_pair, truncation, side), strict=True):
                encoded[index] = row
        return encoded

    def _encode_group(self, items: list[TextItem], is_pair: bool, truncation: bool, side: str) -> list:
        backend = self.backend
        # What fits beside the special tokens; a text known to hold room + 2 tokens is long enough for
        # every decision below (over the maximum; and, for pairs, which of two long texts is longer).
        room = self.max_length - backend.num_special_tokens_to_add(is_pair)
        need = room + 2
        backend.no_truncation()
        backend.no_padding()
        texts = [item.text for item in items] + ([item.pair for item in items] if is_pair else [])
        found = ends(backend, self.cutter, texts, need, side)
        firsts, seconds = found[: len(items)], (found[len(items) :] if is_pair else [None] * len(items))

        rows: list = []  # per row: its encodings, to post-process below, or ``TooLong``
        for item, (first, first_whole), second in zip(items, firsts, seconds, strict=True):
            pair, pair_whole = second if second is not None else (None, True)
            tokens = len(first.ids) + (len(pair.ids) if pair is not None else 0)
            if not truncation and tokens > room:
                specials = self.max_length - room
                rows.append(TooLong(tokens + specials, self.max_length, is_pair, first_whole and pair_whole))
                continue
            if truncation and pair is not None and len(first.ids) > room and len(pair.ids) > room:
                # Both over what fits: longest_first gives the one with more tokens in all one more
                # (room odd); the pieces are cut to lengths that keep that order and nothing else.
                a_longer = (
                    len(first.ids) > len(pair.ids)
                    if first_whole and pair_whole
                    else longer(backend, self.cutter, item.text, item.pair)
                )
                first.truncate(room + 2 if a_longer else room + 1, direction=side)
                pair.truncate(room + 1, direction=side)
            # Truncation decides on lengths up to ``need`` only; cutting there first also keeps its
            # overflow (one encoding per window of each text, for pairs every window of one with every
            # window of the other) small.
            for encoding in (first, pair) if pair is not None else (first,):
                encoding.truncate(need, direction=side)
            rows.append((first, pair))

        if truncation:  # the tokenizer's own truncation, then its special tokens
            backend.enable_truncation(self.max_length, stride=0, strategy="longest_first", direction=side)
        try:
            return [
                row if isinstance(row, TooLong) else backend.post_process(*row, add_special_tokens=True).ids
                for row in rows
            ]
        finally:
            backend.no_truncation()


def tokenize_requests(encoder: TextEncoder, entries: list) -> list:
    """Each request's token rows, or its error: ``InvalidText`` for a row too long with truncation off.

    ``entries`` holds each request's ``TextItem`` rows, or its error (kept as is); the rows of all
    requests are tokenized together (``TextEncoder.encode``).
    """
    encoded = encoder.encode(all_rows(entries))
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


def warm_up(encoder: TextEncoder, defaults: TokenizeOptions) -> None:
    """Run the tokenizer on each path once, so the first request does not pay for it.

    Not a ``model_warmup`` in config.pbtxt: Triton refuses every inference, BLS included,
    until the server is ready, so a warmup that reaches the token model fails the load.
    The token model warms its own forward passes.
    """
    options = (defaults, TokenizeOptions(True, "left"), TokenizeOptions(False, "right"))
    items = [TextItem(text, pair, o) for text, pair in WARMUP for o in options]
    encoder.encode(items * 4)


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
