"""Work per text is bounded by what the model can use, and the answers are those of reading it all.

The reference is the tokenizer's own call on the whole text (``tokenizer(text, pair, truncation=...,
max_length=...)``), the call the text model made before; the text model reads only a piece of a
long text (``text_model.bounded``) and sizes are refused before anything is decoded.
"""

from __future__ import annotations

import random
import re

import numpy as np
import pytest
from transformers import AutoTokenizer

from distilbert_serving.corpus import english_texts
from distilbert_serving.text_model.bounded import Cutter
from distilbert_serving.text_model.encoding import TextEncoder, TooLong
from distilbert_serving.text_model.settings import TextLimits
from distilbert_serving.text_model.validation import (
    InvalidText,
    TextItem,
    TokenizeOptions,
    parse_options,
    request_items,
)

SIDES = ("right", "left")
MAX_LENGTH = 512


@pytest.fixture(scope="module")
def tokenizer(tiny_checkpoints):
    return AutoTokenizer.from_pretrained(tiny_checkpoints["single_label_classification"])


def reference(tokenizer, item: TextItem, max_length: int) -> list[int]:
    """What tokenizing the whole text (and pair) and cutting gives; None when it is over the maximum untruncated."""
    tokenizer.truncation_side = item.options.truncation_side
    try:
        truncation = item.options.truncation
        ids = tokenizer(
            item.text, item.pair, truncation="longest_first" if truncation else False, max_length=max_length
        )["input_ids"]
    finally:
        tokenizer.truncation_side = "right"
    return ids if truncation or len(ids) <= max_length else None


def assert_same_as_whole_texts(tokenizer, items: list[TextItem], max_length: int) -> None:
    encoded = TextEncoder(tokenizer, max_length).encode(items)
    for item, ids in zip(items, encoded, strict=True):
        expected = reference(tokenizer, item, max_length)
        if expected is None:
            assert isinstance(ids, TooLong), f"{item.options}: {len(ids)} tokens accepted untruncated"
        else:
            assert ids == expected, f"{item.options}, pair: {item.pair is not None}"


def words(count: int, seed: int) -> str:
    """``count`` words of real English, many of them several word pieces long."""
    pool = " ".join(english_texts(200, seed=seed)).split()
    return " ".join(pool[i % len(pool)] for i in range(count))


def with_tokens(tokenizer, tokens: int, seed: int) -> str:
    """A text of exactly ``tokens`` tokens (special tokens not counted)."""
    text = words(tokens, seed)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][:tokens]
    return tokenizer.decode(ids)


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("truncation", [True, False])
def test_texts_just_under_at_and_over_the_maximum_get_the_ids_of_the_whole_text(tokenizer, side, truncation):
    room = MAX_LENGTH - 2
    texts = [with_tokens(tokenizer, n, seed=n) for n in (room - 1, room, room + 1, room + 2)]
    texts += [words(MAX_LENGTH * 20, seed=3), words(MAX_LENGTH * 20, seed=3) + " " + "é" * 150]
    options = TokenizeOptions(truncation, side)
    assert_same_as_whole_texts(tokenizer, [TextItem(text, None, options) for text in texts], MAX_LENGTH)


@pytest.mark.parametrize("side", SIDES)
def test_pairs_just_under_at_and_over_the_maximum_get_the_ids_of_the_whole_pair(tokenizer, side):
    room = MAX_LENGTH - 3
    half = room // 2
    counts = [(half, room - half), (half, room - half + 1), (10, room + 1), (room + 1, 10), (room + 5, room + 5)]
    # Both over what fits: longest_first gives the longer one (counted in whole) the odd token, and
    # here the longer one's first pieces are no longer than the shorter one's.
    counts += [(MAX_LENGTH * 20, MAX_LENGTH * 3), (MAX_LENGTH * 3, MAX_LENGTH * 20), (MAX_LENGTH * 4, MAX_LENGTH * 4)]
    items = [
        TextItem(
            with_tokens(tokenizer, a, seed=1), with_tokens(tokenizer, b, seed=2), TokenizeOptions(truncation, side)
        )
        for a, b in counts
        for truncation in (True, False)
    ]
    assert_same_as_whole_texts(tokenizer, items, MAX_LENGTH)


# Pieces of texts that stress where a text may be cut: words of many word pieces, long runs (one
# [UNK] each), accents and combining marks, CJK, special tokens' text, control and format characters,
# non-ASCII whitespace and punctuation, and whitespace-only tails.
ATOMS = [" ", " ", " ", ".", ",", "[", "]", "[SEP]", "[MASK]", "[UNK", "a", "the", "un", "##", "中", "文"]
ATOMS += ["\u0301", "\x00", "é", "\t", "\n", "İ", "!", "\u3000", "\u00a0", "ﬁ", "😀", "ab" * 60, "a" * 250]
ATOMS += ["Z" * 205, "9" * 407, "x" * 101, "ÄÖÜ", "\ufffd", "\u200d", "\x1c", "'", "$", "ß", "ก", "\u0e31", "  \n\t"]
WORDS = ["hello ", "world ", "tokenization ", "unaffordable ", "naïve "]


@pytest.mark.parametrize("max_length", [8, 9, 16, 17, 64])
def test_fuzzed_texts_and_pairs_get_the_ids_of_the_whole_texts_with_every_option(tokenizer, max_length):
    rng = random.Random(max_length)

    def text(atoms: int) -> str:
        return "".join(rng.choice(ATOMS) if rng.random() < 0.5 else rng.choice(WORDS) for _ in range(atoms))

    items = []
    for _ in range(150):
        options = TokenizeOptions(rng.random() < 0.7, rng.choice(SIDES))
        pair = text(rng.choice([1, max_length, max_length * 4, max_length * 20])) if rng.random() < 0.5 else None
        items.append(
            TextItem(
                text(rng.choice([1, max_length // 2, max_length, max_length * 20, max_length * 80])), pair, options
            )
        )
    assert_same_as_whole_texts(tokenizer, items, max_length)


class Reading:
    """The tokenizer's backend, counting the characters it is given to tokenize."""

    def __init__(self, backend):
        self.backend, self.chars = backend, 0

    def encode_batch_fast(self, texts, **kwargs):
        self.chars += sum(len(text) for text in texts)
        return self.backend.encode_batch_fast(texts, **kwargs)

    def __getattr__(self, name):
        return getattr(self.backend, name)


TWENTY_MB = 20 << 20
# 20 MB texts, each the repetition of a unit that ends where a text can be cut, and enough units to
# have more tokens than the model reads (whose tokens are then those of the 20 MB text at that end).
ENGLISH = words(4000, seed=9) + " "
UNITS = {
    "english": (ENGLISH, ENGLISH),
    "one word": ("a" * TWENTY_MB, "a" * 1000),
    "CJK": ("中文的字符", "中文的字符" * 200),
}


@pytest.mark.parametrize("kind", sorted(UNITS))
@pytest.mark.parametrize("side", SIDES)
def test_a_20_mb_text_is_read_only_as_far_as_the_model_can_use_it(tokenizer, kind, side):
    unit, enough = UNITS[kind]  # enough: a text whose tokens at each end are those of the 20 MB text
    text = unit * (TWENTY_MB // len(unit))
    encoder = TextEncoder(tokenizer, MAX_LENGTH)
    encoder.backend = reading = Reading(encoder.backend)

    truncated, refused = encoder.encode(
        [TextItem(text, None, TokenizeOptions(True, side)), TextItem(text, None, TokenizeOptions(False, side))]
    )

    assert reading.chars < 64 << 10, f"{reading.chars:,} characters tokenized of {len(text):,}"
    assert truncated == reference(tokenizer, TextItem(enough, None, TokenizeOptions(True, side)), MAX_LENGTH)
    assert isinstance(refused, TooLong) == (kind != "one word")  # one word: [CLS] [UNK] [SEP]
    if kind != "one word":
        assert not refused.exact and "at least" in refused.message(0)


def test_a_tokenizer_without_berts_pipeline_reads_whole_texts_with_the_same_ids(tokenizer):
    from tokenizers.pre_tokenizers import Whitespace

    other = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    other.backend_tokenizer.pre_tokenizer = Whitespace()
    assert Cutter.of(tokenizer) is not None and Cutter.of(other) is None
    items = [TextItem(words(2000, seed=4), None, TokenizeOptions(True, side)) for side in SIDES]
    assert_same_as_whole_texts(other, items, MAX_LENGTH)


def strings(*values: bytes) -> np.ndarray:
    return np.array([[v] for v in values], dtype=np.object_)


LIMITS = TextLimits(max_text_bytes=100, max_request_bytes=250)
OPTIONS = TokenizeOptions()


def test_texts_up_to_the_byte_limits_are_accepted():
    items = request_items(strings(b"a" * 100, b"b" * 25), strings(b"c" * 100, b"d" * 25), OPTIONS, LIMITS)
    assert [len(item.text) + len(item.pair) for item in items] == [200, 50]


@pytest.mark.parametrize(
    ("text", "pair", "phrase"),
    [
        (strings(b"a" * 101), None, "text[0] is 101 bytes, over the limit of 100 bytes per text"),
        (strings(b"a", b"a" * 101), None, "text[1] is 101 bytes"),
        (strings(b"a"), strings(b"b" * 101), "text_pair[0] is 101 bytes"),
        # Sizes come first: an over-long text that is not UTF-8 is refused for its size, unread.
        (strings(b"\xff" * 101), None, "text[0] is 101 bytes"),
        (strings(*[b"a" * 90] * 3), None, "the request's texts are 270 bytes together, over the limit of 250"),
        (strings(b"a" * 90, b"a" * 90), strings(b"b" * 40, b"b" * 40), "are 260 bytes together"),
    ],
)
def test_texts_and_requests_over_the_byte_limits_are_refused_naming_the_limit_and_its_knob(text, pair, phrase):
    with pytest.raises(InvalidText, match=re.escape(phrase)) as refused:
        request_items(text, pair, OPTIONS, LIMITS)
    knob = "max_text_bytes (build/export.py --max-text-bytes)"
    if "together" in phrase:
        knob = "max_request_bytes (build/export.py --text-max-request-bytes)"
    assert f"raise the text model's parameter {knob}" in str(refused.value)


def test_a_request_cannot_raise_its_own_byte_limits():
    assert parse_options({"max_text_bytes": 1 << 30, "max_request_bytes": 1 << 30}, OPTIONS) == OPTIONS
