"""Splitting texts into length-sorted requests, and putting answers back in input order."""

from __future__ import annotations

import numpy as np
import pytest

from distilbert_client._batching import pad_chunk, plan_chunks, reorder


def test_plan_chunks_sorts_by_length_and_bounds_rows_when_list_exceeds_max_rows():
    lengths = [5, 30, 7, 30, 2, 9, 12]

    chunks = plan_chunks(lengths, max_rows=3)

    assert [len(c) for c in chunks] == [3, 3, 1]
    assert sorted(i for c in chunks for i in c) == list(range(len(lengths)))
    flat = [lengths[i] for c in chunks for i in c]
    assert flat == sorted(lengths, reverse=True)


def test_plan_chunks_keeps_one_length_per_request_when_model_takes_no_mask():
    lengths = [4, 4, 6, 4, 6]

    chunks = plan_chunks(lengths, max_rows=64, uniform_length=True)

    assert [{lengths[i] for i in c} for c in chunks] == [{6}, {4}]


def test_plan_chunks_rejects_max_rows_below_one():
    with pytest.raises(ValueError, match="at least 1"):
        plan_chunks([3], max_rows=0)


def test_pad_chunk_right_pads_ids_and_masks_the_padding():
    encoded = {"input_ids": [[101, 7, 102], [101, 102], [101, 8, 9, 102]]}

    chunk = pad_chunk(encoded, (2, 0), {"input_ids": 0}, {"input_ids": np.int64, "attention_mask": np.int64})

    assert chunk.indices == (2, 0)
    assert chunk.arrays["input_ids"].tolist() == [[101, 8, 9, 102], [101, 7, 102, 0]]
    assert chunk.arrays["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert chunk.arrays["input_ids"].dtype == np.int64


def test_reorder_puts_answers_back_in_input_order_when_chunks_were_sorted():
    encoded = {"input_ids": [[1] * n for n in (3, 9, 1, 5)]}
    dtypes = {"input_ids": np.int64, "attention_mask": np.int64}
    chunks = [pad_chunk(encoded, c, {}, dtypes) for c in plan_chunks([3, 9, 1, 5], max_rows=2)]
    answers = [[f"answer {i}" for i in chunk.indices] for chunk in chunks]

    assert reorder(chunks, answers, 4) == ["answer 0", "answer 1", "answer 2", "answer 3"]


def test_reorder_refuses_an_answer_with_the_wrong_number_of_rows():
    chunk = pad_chunk({"input_ids": [[1], [2]]}, (0, 1), {}, {"input_ids": np.int64, "attention_mask": np.int64})

    with pytest.raises(ValueError, match="2 rows was answered with 1"):
        reorder([chunk], [["only one"]], 2)
