"""Each malformed request gets its own clear error; well-formed ones beside it succeed."""

from __future__ import annotations

import queue

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from distilbert_serving.export import ServingConfig
from helpers import reference_logits, token_ids

MODEL = "distilbert_classifier"
GOOD_TEXT = "The service answered every well-formed request."


def tensor(name: str, array: np.ndarray, dtype: str = "INT64") -> grpcclient.InferInput:
    t = grpcclient.InferInput(name, list(array.shape), dtype)
    t.set_data_from_numpy(array)
    return t


def ids(*rows) -> np.ndarray:
    return np.array(rows, dtype=np.int64)


# name → (inputs, a phrase the error message must contain)
MALFORMED = {
    "out_of_vocab_id": ([tensor("input_ids", ids([101, 30522, 102]))], "outside the vocabulary [0, 30522)"),
    "negative_id": ([tensor("input_ids", ids([101, -5, 102]))], "outside the vocabulary"),
    "too_long": ([tensor("input_ids", np.full((1, 513), 1000, dtype=np.int64))], "exceeds the model's maximum of 512"),
    "zero_length": ([tensor("input_ids", np.zeros((1, 0), dtype=np.int64))], "at least 1 token"),
    "mask_shape_differs": (
        [tensor("input_ids", ids([101, 2000, 102])), tensor("attention_mask", ids([1, 1]))],
        "attention_mask shape [1, 2] differs from input_ids shape [1, 3]",
    ),
    "mask_value_not_binary": (
        [tensor("input_ids", ids([101, 2000, 102])), tensor("attention_mask", ids([1, 2, 1]))],
        "must be 0 or 1",
    ),
    "mask_all_zero": (
        [tensor("input_ids", ids([101, 2000, 102])), tensor("attention_mask", ids([0, 0, 0]))],
        "all zeros",
    ),
    # Rejected by Triton itself, before model.py, against config.pbtxt.
    "wrong_dtype": ([tensor("input_ids", np.array([[101, 102]], dtype=np.int32), "INT32")], "expects 'INT64'"),
    "batch_over_max_batch_size": (
        [tensor("input_ids", np.full((ServingConfig().max_batch_size + 1, 4), 1000, dtype=np.int64))],
        f"batch-size must be <= {ServingConfig().max_batch_size}",
    ),
    "wrong_rank": ([tensor("input_ids", np.full((1, 2, 3), 1000, dtype=np.int64))], "input_ids"),
    "missing_input_ids": ([tensor("attention_mask", ids([1, 1]))], "input_ids"),
    "unknown_input": ([tensor("input_ids", ids([101, 102])), tensor("token_type_ids", ids([0, 0]))], "token_type_ids"),
}


def send_concurrently(client, requests: list[list[grpcclient.InferInput]]):
    """Fire all requests at once (so they share dynamic batches); (result, error) in order."""
    done: queue.Queue = queue.Queue()
    for index, inputs in enumerate(requests):
        client.async_infer(MODEL, inputs, callback=lambda result, error, index=index: done.put((index, result, error)))
    answers = [None] * len(requests)
    for _ in requests:
        index, result, error = done.get(timeout=60)
        answers[index] = (result, error)
    return answers


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_request_gets_clear_error_while_good_ones_in_same_batch_succeed(
    server, grpc_client, tiny_checkpoints, case
):
    checkpoint = tiny_checkpoints["single_label_classification"]
    good_ids = ids(token_ids(checkpoint, [GOOD_TEXT])[0])
    bad_inputs, phrase = MALFORMED[case]
    requests = []
    for _ in range(4):  # interleaved so that bad and good requests share executes
        requests += [[tensor("input_ids", good_ids)], bad_inputs]

    answers = send_concurrently(grpc_client, requests)

    expected = reference_logits(checkpoint, good_ids.tolist())
    for (result, error), inputs in zip(answers, requests, strict=True):
        if inputs is bad_inputs:
            assert result is None and error is not None
            assert phrase in error.message(), error.message()
        else:
            assert error is None, error
            assert np.abs(result.as_numpy("logits") - expected).max() <= 1e-4
    assert grpc_client.is_server_live() and grpc_client.is_server_ready() and grpc_client.is_model_ready(MODEL)


def test_model_errors_carry_invalid_argument_status(grpc_client):
    with pytest.raises(Exception) as raised:
        grpc_client.infer(MODEL, MALFORMED["out_of_vocab_id"][0])
    assert "INVALID_ARGUMENT" in str(raised.value.status())
