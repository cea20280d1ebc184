"""The raw-text model: same answers as the token model and in-process transformers, clear errors."""

from __future__ import annotations

import queue

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from distilbert_serving.corpus import english_texts
from distilbert_serving.export import TextModelConfig
from helpers import infer_ids, reference_logits, tokenizer

TEXT_MODEL = "distilbert_text"
TOKEN_MODEL = "distilbert_classifier"
SINGLE = "single_label_classification"
LABELS = ["negative", "neutral", "positive"]
TOLERANCE = 1e-4
GOOD_TEXT = "The service answered every well-formed request."
LONG_TEXT = " ".join(english_texts(200, seed=6))  # well over 512 tokens
MAX_TEXT_BYTES, MAX_REQUEST_BYTES = TextModelConfig().max_text_bytes, TextModelConfig().max_request_bytes


def text_inputs(texts, pairs=None, dtype: str = "BYTES") -> list[grpcclient.InferInput]:
    def tensor(name, values):
        array = np.array([[v.encode() if isinstance(v, str) else v] for v in values], dtype=np.object_)
        if dtype != "BYTES":
            array = np.ones((len(values), 1), dtype=np.int64)
        t = grpcclient.InferInput(name, list(array.shape), dtype)
        t.set_data_from_numpy(array)
        return t

    return [tensor("text", texts)] + ([] if pairs is None else [tensor("text_pair", pairs)])


def send_concurrently(client, requests: list[tuple[list, dict | None]], outputs=("logits", "probabilities", "label")):
    """Fire all requests at once (so they share dynamic batches); (result, error) in order."""
    done: queue.Queue = queue.Queue()
    for index, (inputs, parameters) in enumerate(requests):
        client.async_infer(
            TEXT_MODEL,
            inputs,
            callback=lambda result, error, index=index: done.put((index, result, error)),
            outputs=[grpcclient.InferRequestedOutput(name) for name in outputs],
            parameters=parameters,
        )
    answers = [None] * len(requests)
    for _ in requests:
        index, result, error = done.get(timeout=120)
        answers[index] = (result, error)
    return answers


def reference_ids(checkpoint, text: str, pair: str | None = None, side: str = "right") -> list[int]:
    tok = tokenizer(checkpoint)
    tok.truncation_side = side
    try:
        return tok(text, pair, truncation=True, max_length=512)["input_ids"]
    finally:
        tok.truncation_side = "right"


def counts(client, model: str) -> tuple[int, int]:
    stats = client.get_inference_statistics(model, as_json=True)["model_stats"][0]
    return int(stats.get("inference_count", 0)), int(stats.get("execution_count", 0))


def test_text_endpoint_equals_token_endpoint_and_in_process_for_60_texts_and_10_pairs(
    server, grpc_client, tiny_checkpoints
):
    checkpoint = tiny_checkpoints[SINGLE]
    texts = [*english_texts(50, seed=7), LONG_TEXT]
    pairs = list(zip(english_texts(20, seed=8)[:10], english_texts(20, seed=8)[10:], strict=True))
    cases = [(t, None) for t in texts] + pairs
    before = counts(grpc_client, TEXT_MODEL)

    answers = send_concurrently(grpc_client, [(text_inputs([t], None if p is None else [p]), None) for t, p in cases])

    ids = [reference_ids(checkpoint, t, p) for t, p in cases]
    assert max(len(row) for row in ids) == 512 and len({len(row) for row in ids}) > 20
    expected = reference_logits(checkpoint, ids)
    token_endpoint = np.concatenate(
        [infer_ids(grpc_client, TOKEN_MODEL, np.array([row])).as_numpy("logits") for row in ids]
    )
    for (result, error), want, via_tokens in zip(answers, expected, token_endpoint, strict=True):
        assert error is None, error
        logits = result.as_numpy("logits")[0]
        assert np.abs(logits - want).max() <= TOLERANCE
        assert np.abs(logits - via_tokens).max() <= TOLERANCE
        assert result.as_numpy("label")[0, 0].decode() == LABELS[int(np.argmax(want))]
        probabilities = result.as_numpy("probabilities")[0]
        assert probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    inferences, executions = (a - b for a, b in zip(counts(grpc_client, TEXT_MODEL), before, strict=True))
    assert inferences == len(cases) and executions < inferences, "text requests were not batched"


def test_multi_row_request_with_pairs_answers_each_row(grpc_client, tiny_checkpoints):
    checkpoint = tiny_checkpoints[SINGLE]
    texts, pairs = english_texts(16, seed=9)[:8], english_texts(16, seed=9)[8:]

    result = grpc_client.infer(TEXT_MODEL, text_inputs(texts, pairs))

    expected = reference_logits(
        checkpoint, [reference_ids(checkpoint, t, p) for t, p in zip(texts, pairs, strict=True)]
    )
    assert result.as_numpy("logits").shape == (8, 3) and result.as_numpy("label").shape == (8, 1)
    assert np.abs(result.as_numpy("logits") - expected).max() <= TOLERANCE


def test_truncation_side_and_default_are_request_parameters(grpc_client, tiny_checkpoints):
    checkpoint = tiny_checkpoints[SINGLE]
    left, default = (
        grpc_client.infer(TEXT_MODEL, text_inputs([LONG_TEXT]), parameters=parameters).as_numpy("logits")
        for parameters in ({"truncation_side": "left"}, None)
    )
    assert np.abs(left - reference_logits(checkpoint, [reference_ids(checkpoint, LONG_TEXT, side="left")])).max() <= (
        TOLERANCE
    )
    assert np.abs(default - reference_logits(checkpoint, [reference_ids(checkpoint, LONG_TEXT)])).max() <= TOLERANCE
    assert np.abs(left - default).max() > TOLERANCE, "left and right truncation must see different tokens"


def test_classification_extension_returns_top_labels_on_the_text_endpoint(grpc_client):
    outputs = [
        grpcclient.InferRequestedOutput("probabilities", class_count=2),
        grpcclient.InferRequestedOutput("label"),
    ]
    result = grpc_client.infer(TEXT_MODEL, text_inputs(["I love this movie"]), outputs=outputs)

    probabilities = grpc_client.infer(TEXT_MODEL, text_inputs(["I love this movie"])).as_numpy("probabilities")[0]
    top = [entry.decode().split(":") for entry in result.as_numpy("probabilities")[0]]
    expected = [int(i) for i in np.argsort(-probabilities)[:2]]
    assert [int(index) for _, index, _ in top] == expected
    assert [label for _, _, label in top] == [LABELS[i] for i in expected]
    assert result.as_numpy("label")[0, 0].decode() == LABELS[expected[0]]


def english_of_bytes(size: int, seed: int) -> str:
    """Real English text of exactly ``size`` bytes."""
    unit = (" ".join(english_texts(300, seed=seed)) + " ").encode("ascii", errors="ignore")
    return (unit * (size // len(unit) + 1))[:size].decode()


@pytest.mark.parametrize("side", ["right", "left"])
def test_texts_up_to_the_byte_limit_are_answered_as_if_tokenized_whole_and_cut(grpc_client, tiny_checkpoints, side):
    # Only as much of each text as reaches the model is tokenized (text_model/bounded.py); the answers
    # are those of tokenizing all of it, here for texts and pairs of up to max_text_bytes.
    # (The reference tokenizes whole texts: for a pair of two long texts its overflowing windows, every
    # window of one with every window of the other, take gigabytes; hence LONG_TEXT in the long pair.)
    checkpoint = tiny_checkpoints[SINGLE]
    at_limit, other = english_of_bytes(MAX_TEXT_BYTES, seed=1), " ".join(english_texts(300, seed=2))
    cases = [(at_limit, None), (LONG_TEXT, None), (GOOD_TEXT, at_limit), (at_limit, GOOD_TEXT), (LONG_TEXT, other)]

    answers = send_concurrently(
        grpc_client,
        [(text_inputs([t], None if p is None else [p]), {"truncation_side": side}) for t, p in cases],
    )

    expected = reference_logits(checkpoint, [reference_ids(checkpoint, t, p, side) for t, p in cases])
    for (result, error), want in zip(answers, expected, strict=True):
        assert error is None, error
        assert np.abs(result.as_numpy("logits")[0] - want).max() <= TOLERANCE


# name → (inputs, request parameters, a phrase the error message must contain)
MALFORMED = {
    "empty_string": (text_inputs([""]), None, "text[0] is empty or only whitespace"),
    "whitespace_only": (text_inputs(["  \n "]), None, "text[0] is empty or only whitespace"),
    "not_utf8": (text_inputs([b"caf\xe9 au lait"]), None, "text[0] is not valid UTF-8"),
    "too_long_without_truncation": (
        text_inputs([LONG_TEXT]),
        {"truncation": False},
        "over the model's maximum of 512; shorten it or send request parameter truncation=true",
    ),
    "bad_truncation_value": (text_inputs([GOOD_TEXT]), {"truncation": "sometimes"}, "truncation must be a boolean"),
    "text_over_max_text_bytes": (
        text_inputs(["a" * (MAX_TEXT_BYTES + 1)]),
        None,
        f"text[0] is {MAX_TEXT_BYTES + 1:,} bytes, over the limit of {MAX_TEXT_BYTES:,} bytes per text",
    ),
    "request_over_max_request_bytes": (
        # Texts and pairs at the per-text limit, one row more than max_request_bytes holds.
        text_inputs(*[["a " * (MAX_TEXT_BYTES // 2)] * (MAX_REQUEST_BYTES // (2 * MAX_TEXT_BYTES) + 1)] * 2),
        None,
        f"over the limit of {MAX_REQUEST_BYTES:,} bytes per request; send fewer or shorter texts",
    ),
    "pair_count_differs": (text_inputs([GOOD_TEXT, GOOD_TEXT], [GOOD_TEXT]), None, "batch size does not match"),
    "empty_pair": (text_inputs([GOOD_TEXT], [""]), None, "text_pair[0] is empty"),
    # Rejected by Triton itself, before model.py, against config.pbtxt.
    "wrong_dtype": (text_inputs([GOOD_TEXT], dtype="INT64"), None, "expects 'BYTES'"),
    "batch_over_max_batch_size": (
        text_inputs([GOOD_TEXT] * (TextModelConfig().max_batch_size + 1)),
        None,
        f"batch-size must be <= {TextModelConfig().max_batch_size}",
    ),
    "missing_text": (text_inputs([GOOD_TEXT])[:0] + text_inputs([GOOD_TEXT], [GOOD_TEXT])[1:], None, "text"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_text_request_gets_clear_error_while_good_ones_in_same_batch_succeed(
    grpc_client, tiny_checkpoints, case
):
    checkpoint = tiny_checkpoints[SINGLE]
    bad_inputs, parameters, phrase = MALFORMED[case]
    good = (text_inputs([GOOD_TEXT]), None)
    requests = []
    for _ in range(3):  # interleaved so that bad and good requests share executes
        requests += [good, (bad_inputs, parameters)]

    answers = send_concurrently(grpc_client, requests)

    expected = reference_logits(checkpoint, [reference_ids(checkpoint, GOOD_TEXT)])
    for (result, error), (inputs, _) in zip(answers, requests, strict=True):
        if inputs is bad_inputs:
            assert result is None and error is not None
            assert phrase in error.message(), error.message()
            if case not in ("wrong_dtype", "batch_over_max_batch_size", "missing_text", "pair_count_differs"):
                assert "INVALID_ARGUMENT" in str(error.status())
        else:
            assert error is None, error
            assert np.abs(result.as_numpy("logits") - expected).max() <= TOLERANCE
    assert grpc_client.is_model_ready(TEXT_MODEL)


def test_text_requests_with_a_deadline_pass_it_on_and_are_answered_as_those_without(grpc_client):
    # The client library's deadline: Triton's timeout and the stamp; the text model hands both on with its call
    # to the token model (text_model/relay.py), which must accept them and answer as it does without.
    from distilbert_client._core import server_deadline

    texts = english_texts(12, seed=9)
    plain = send_concurrently(grpc_client, [(text_inputs([text]), None) for text in texts])
    stamped = []
    for text in texts:
        deadline = server_deadline(30.0)
        stamped.append(
            grpc_client.infer(
                TEXT_MODEL, text_inputs([text]), timeout=deadline["timeout"], parameters=deadline["parameters"]
            )
        )
    for (expected, error), result in zip(plain, stamped, strict=True):
        assert error is None
        assert np.abs(result.as_numpy("logits") - expected.as_numpy("logits")).max() <= TOLERANCE
