import numpy as np
import pytest

from distilbert_serving.token_model.validation import InvalidRequest, Limits, validate_request, validate_requests

LIMITS = Limits(vocab_size=100, max_length=8)


def arr(*rows):
    return np.array(rows, dtype=np.int64)


def test_rows_without_mask_keep_every_token():
    rows = validate_request(arr([1, 2, 3], [4, 5, 6]), None, LIMITS)
    assert [r.ids.tolist() for r in rows] == [[1, 2, 3], [4, 5, 6]]
    assert all(r.mask is None for r in rows)


def test_trailing_padding_is_trimmed_and_contiguous_masks_dropped():
    rows = validate_request(arr([1, 2, 0, 0], [4, 5, 6, 7]), arr([1, 1, 0, 0], [1, 1, 1, 1]), LIMITS)
    assert [r.length for r in rows] == [2, 4]
    assert all(r.mask is None for r in rows)


def test_mask_with_holes_is_kept_for_the_engine():
    (row,) = validate_request(arr([1, 2, 3, 4]), arr([1, 0, 1, 0]), LIMITS)
    assert row.ids.tolist() == [1, 2, 3]
    assert row.mask.tolist() == [1, 0, 1]


@pytest.mark.parametrize(
    ("ids", "mask", "phrase"),
    [
        (arr([1, 100]), None, "input_ids[0][1] = 100 is outside the vocabulary [0, 100)"),
        (arr([1, -1]), None, "outside the vocabulary"),
        (np.zeros((1, 0), dtype=np.int64), None, "at least 1 token"),
        (np.zeros((0, 3), dtype=np.int64), None, "batch size 0"),
        (np.ones((1, 9), dtype=np.int64), None, "exceeds the model's maximum of 8 tokens"),
        (np.ones(3, dtype=np.int64), None, "shape [batch, length]"),
        (arr([1, 2]), arr([1]), "attention_mask shape [1, 1] differs from input_ids shape [1, 2]"),
        (arr([1, 2]), arr([1, 3]), "must be 0 or 1; found 3"),
        (arr([1, 2]), arr([0, 0]), "row 0 is all zeros"),
        (np.ones((1, 2), dtype=np.float32), None, "INT64"),
    ],
)
def test_invalid_request_names_what_is_wrong(ids, mask, phrase):
    with pytest.raises(InvalidRequest) as raised:
        validate_request(ids, mask, LIMITS)
    assert phrase in str(raised.value)


def test_requests_are_checked_together_and_only_the_one_at_fault_gets_an_error():
    ended = InvalidRequest("input_ids is required")
    good, wide = arr([1, 2, 3]), np.array([[5, 6]], dtype=np.int32)
    results = validate_requests([(good, None), (arr([1, 100]), None), ended, (wide, None)], LIMITS)
    assert [row.ids.tolist() for row in results[0]] == [[1, 2, 3]]
    assert isinstance(results[1], InvalidRequest) and "input_ids[0][1] = 100" in str(results[1])
    assert results[2] is ended
    assert results[3][0].ids.tolist() == [5, 6] and results[3][0].ids.dtype == np.int64
    together = validate_requests([(good, None), (wide, None)], LIMITS)
    assert [r[0].ids.tolist() for r in together] == [[1, 2, 3], [5, 6]]


def test_requests_of_other_shapes_and_types_are_refused_as_they_would_be_alone():
    results = validate_requests([(np.array([1, 2]), None), (np.array([[1.5]]), None), (arr([2]), None)], LIMITS)
    assert "shape [batch, length]" in str(results[0]) and "INT64" in str(results[1])
    assert results[2][0].ids.tolist() == [2]
