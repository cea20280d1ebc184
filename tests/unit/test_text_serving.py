"""The raw-text model's pure logic: decoding, options, batched tokenization, chunks, padding, labels."""

from __future__ import annotations

import numpy as np
import pytest
from transformers import AutoTokenizer

from distilbert_serving.corpus import english_texts
from distilbert_serving.outcomes import DEADLINE_PARAMETER
from distilbert_serving.text_model.batching import all_rows, chunk_deadlines, row_spans, split_answers
from distilbert_serving.text_model.encoding import TextEncoder, TooLong, pad_rows, tokenize_requests, top_labels
from distilbert_serving.text_model.relay import deadline_arguments, relayed_error
from distilbert_serving.text_model.validation import (
    InvalidText,
    TextItem,
    TokenizeOptions,
    decode_strings,
    parse_options,
    request_items,
)

DEFAULT = TokenizeOptions()


def strings(*values) -> np.ndarray:
    return np.array([[v] for v in values], dtype=np.object_)


@pytest.fixture(scope="module")
def tokenizer(tiny_checkpoints):
    return AutoTokenizer.from_pretrained(tiny_checkpoints["single_label_classification"])


def test_decode_strings_returns_one_str_per_row():
    assert decode_strings("text", strings("héllo".encode(), b"world")) == ["héllo", "world"]


@pytest.mark.parametrize(
    ("array", "phrase"),
    [
        (strings(b"fine", b"\xff\xfe"), "text[1] is not valid UTF-8 (invalid start byte at byte 0)"),
        (strings(b""), "text[0] is empty or only whitespace"),
        (strings(b" \n\t "), "text[0] is empty or only whitespace"),
        (np.array([b"a", b"b"], dtype=np.object_), "must have shape [batch, 1]"),
        (np.zeros((0, 1), dtype=np.object_), "batch size 0"),
    ],
)
def test_decode_strings_rejects_with_a_message_naming_the_row(array, phrase):
    with pytest.raises(InvalidText) as raised:
        decode_strings("text", array)
    assert phrase in str(raised.value)


def test_request_items_pairs_rows_and_refuses_mismatched_pairs():
    items = request_items(strings(b"a", b"b"), strings(b"x", b"y"), DEFAULT)
    assert [(i.text, i.pair) for i in items] == [("a", "x"), ("b", "y")]
    with pytest.raises(InvalidText, match="text_pair has 1 row"):
        request_items(strings(b"a", b"b"), strings(b"x"), DEFAULT)
    with pytest.raises(InvalidText, match="text is required"):
        request_items(None, strings(b"x"), DEFAULT)


def test_parse_options_overrides_defaults_and_ignores_other_parameters():
    assert parse_options({}, DEFAULT) == TokenizeOptions(True, "right")
    assert parse_options({"truncation": False, "priority": 3}, DEFAULT) == TokenizeOptions(False, "right")
    assert parse_options({"truncation": "true", "truncation_side": "left"}, DEFAULT) == TokenizeOptions(True, "left")


@pytest.mark.parametrize(
    ("parameters", "phrase"),
    [
        ({"truncation": "maybe"}, "request parameter truncation must be a boolean"),
        ({"truncation_side": "middle"}, "request parameter truncation_side must be one of right, left"),
    ],
)
def test_parse_options_rejects_bad_values(parameters, phrase):
    with pytest.raises(InvalidText, match=phrase):
        parse_options(parameters, DEFAULT)


def test_batched_encoding_equals_one_tokenizer_call_per_text_in_any_mix_of_options(tokenizer):
    texts = english_texts(24, seed=5)
    long_text = " ".join(english_texts(200, seed=6))
    left = TokenizeOptions(True, "left")
    items = [TextItem(t, None, DEFAULT) for t in texts[:12]]
    items += [TextItem(t, p, DEFAULT) for t, p in zip(texts[12:18], texts[18:24], strict=True)]
    items += [TextItem(long_text, None, left), TextItem(long_text, None, DEFAULT), TextItem(long_text, texts[0], left)]
    items.insert(3, TextItem(texts[5], None, left))

    encoded = TextEncoder(tokenizer, max_length=512).encode(items)

    for item, ids in zip(items, encoded, strict=True):
        tokenizer.truncation_side = item.options.truncation_side
        expected = tokenizer(item.text, item.pair, truncation=True, max_length=512)["input_ids"]
        assert ids == expected
    assert len(encoded[-1]) == len(encoded[-2]) == 512 and encoded[-2] != encoded[-3]


def test_untruncated_row_over_the_maximum_is_reported_alone(tokenizer):
    long_text = " ".join(english_texts(200, seed=6))
    off = TokenizeOptions(truncation=False)
    encoded = TextEncoder(tokenizer, 512).encode([TextItem("short", None, off), TextItem(long_text, None, off)])

    assert isinstance(encoded[0], list) and isinstance(encoded[1], TooLong)
    message = encoded[1].message(3)
    assert message.startswith("text[3] is ") and "over the model's maximum of 512" in message
    assert "truncation=true" in message


def test_pad_rows_masks_only_ragged_requests():
    ids, mask = pad_rows([[101, 7, 102], [101, 102]], pad_id=0)
    assert ids.tolist() == [[101, 7, 102], [101, 102, 0]] and mask.tolist() == [[1, 1, 1], [1, 1, 0]]
    assert ids.dtype == np.int64 and mask.dtype == np.int64
    assert pad_rows([[101, 102], [101, 102]], pad_id=0)[1] is None


def test_top_labels_names_the_highest_logit_per_row():
    labels = top_labels(np.array([[0.1, 2.0, -1.0], [3.0, 0.0, 0.0]], dtype=np.float32), ("neg", "neu", "pos"))
    assert labels.shape == (2, 1) and labels[:, 0].tolist() == [b"neu", b"neg"]


def test_tokenize_requests_fails_only_the_request_with_an_over_long_row(tokenizer):
    long_text = " ".join(english_texts(200, seed=6))
    off = TokenizeOptions(truncation=False)
    refused = InvalidText("text is required")
    entries = [
        [TextItem("short", None, DEFAULT)],
        refused,
        [TextItem("fine", None, off), TextItem(long_text, None, off)],
    ]

    tokenized = tokenize_requests(TextEncoder(tokenizer, 512), entries)

    assert tokenized[0] == [tokenizer("short")["input_ids"]] and tokenized[1] is refused
    assert isinstance(tokenized[2], InvalidText) and str(tokenized[2]).startswith("text[1] is ")


def test_row_spans_place_each_request_and_skip_errors():
    entries = [["a", "b"], ValueError("bad"), [], ["c"]]
    assert row_spans(entries) == [slice(0, 2), None, slice(2, 2), slice(2, 3)]
    assert all_rows(entries) == ["a", "b", "c"]


def answers_for(rows: int, chunk_rows: int, failed=()) -> list:
    """Chunk answers whose values are the row numbers; chunks in ``failed`` answer with an error."""
    values = np.arange(rows, dtype=np.float32)[:, None]
    return [
        f"chunk {c} failed"
        if c in failed
        else (values[start : start + chunk_rows], -values[start : start + chunk_rows])
        for c, start in enumerate(range(0, rows, chunk_rows))
    ]


def test_split_answers_gives_each_request_its_rows_across_chunk_boundaries():
    refused = InvalidText("text is required")
    entries = [list("abc"), refused, list("de"), list("fghij")]  # 10 rows, chunks of 4

    results = split_answers(entries, answers_for(10, 4), chunk_rows=4)

    assert results[1] is refused
    for result, expected in zip(
        [results[0], results[2], results[3]], [[0, 1, 2], [3, 4], [5, 6, 7, 8, 9]], strict=True
    ):
        logits, negated = result
        assert logits[:, 0].tolist() == expected and negated[:, 0].tolist() == [-v for v in expected]


def test_a_failed_chunk_fails_only_the_requests_with_a_row_in_it():
    entries = [list("abc"), list("de"), list("fghij"), list("k")]  # rows 0-2, 3-4, 5-9, 10; chunks of 4

    results = split_answers(entries, answers_for(11, 4, failed={1}), chunk_rows=4)  # chunk 1: rows 4-7

    assert results[0][0][:, 0].tolist() == [0, 1, 2]
    assert results[1] == "chunk 1 failed" and results[2] == "chunk 1 failed"
    assert results[3][0][:, 0].tolist() == [10]


class _TritonError:
    INTERNAL, UNAVAILABLE = "internal-code", "unavailable-code"

    def __init__(self, message, code=None):
        self.message, self.code = message, code


_PB_UTILS = type("pb_utils", (), {"TritonError": _TritonError})


@pytest.mark.parametrize(
    ("message", "code", "expected"),
    [
        # Triton's refusals reach a BLS call as INTERNAL (or with no status): the caller must see UNAVAILABLE.
        (
            "Error when running inference: [request id: <id_unknown>] Exceeds maximum queue size",
            None,
            "unavailable-code",
        ),
        ("[request id: <id_unknown>] Request timeout expired", "internal-code", "unavailable-code"),
        ("forward failed: out of memory", "internal-code", "internal-code"),
        ("the server is stopping", None, None),
    ],
)
def test_the_token_models_errors_are_relayed_with_the_status_they_mean(message, code, expected):
    error = relayed_error(_PB_UTILS, "distilbert_classifier", message, code)

    assert (error.message, error.code) == (f"distilbert_classifier: {message}", expected)


def test_a_chunk_carries_the_latest_deadline_of_its_requests_or_none_if_one_has_none():
    # Requests of 3 rows, none (an error), 4 and 2 in chunks of 4: rows 0-2, 3-6 and 7-8 in chunks 0-3 | 4-7 | 8
    entries = [[1, 2, 3], ValueError("bad"), [4, 5, 6, 7], [8, 9]]
    assert chunk_deadlines(entries, [10.0, 99.0, 12.0, 11.0], chunk_rows=4) == [12.0, 12.0, 11.0]
    assert chunk_deadlines(entries, [10.0, 99.0, None, 11.0], chunk_rows=4) == [None, None, 11.0]
    assert chunk_deadlines([ValueError("bad")], [1.0], chunk_rows=4) == []


def test_deadline_arguments_are_what_the_client_library_sends():
    assert deadline_arguments(None, 100.0) == {}
    assert deadline_arguments(100.25, 100.0) == {"timeout": 250_000, "parameters": {DEADLINE_PARAMETER: 100_250}}
    # A deadline already passed still gives Triton a timeout it accepts, and it refuses the call at once.
    assert deadline_arguments(99.0, 100.0)["timeout"] == 1
