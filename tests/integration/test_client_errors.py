"""Each kind of client error, raised in the real situation it names."""

from __future__ import annotations

import asyncio
import time

import pytest

from distilbert_client import (
    AsyncClassifier,
    Classifier,
    DeadlineExceededError,
    IncompatibleModelError,
    InvalidInputError,
    ModelNotReadyError,
    RetryPolicy,
    ServerUnavailableError,
)
from distilbert_serving.corpus import english_texts
from distilbert_serving.launch import free_port

SINGLE = "single_label_classification"
# Deterministic backoff (no jitter): 0.2 s, then 0.4 s.
RETRY = RetryPolicy(attempts=3, initial_backoff_s=0.2, multiplier=2.0, jitter=0.0)
LONG_TEXT = " ".join(english_texts(300, seed=3))


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoints):
    return tiny_checkpoints[SINGLE]


@pytest.fixture(scope="module")
def classifier(server, checkpoint):
    with Classifier(server.grpc_url, checkpoint) as classifier:
        yield classifier


def test_classifier_raises_server_unavailable_after_retrying_with_backoff_when_server_is_down(checkpoint):
    started = time.monotonic()
    with pytest.raises(ServerUnavailableError) as caught:
        Classifier(f"127.0.0.1:{free_port()}", checkpoint, retry=RETRY)

    assert time.monotonic() - started >= 0.2 + 0.4, "two retries, after 0.2 s and 0.4 s"
    assert caught.value.status == "UNAVAILABLE"
    assert "connect" in caught.value.message.lower()


def test_async_classifier_raises_server_unavailable_when_server_is_down(checkpoint):
    async def connect():
        async with AsyncClassifier(f"127.0.0.1:{free_port()}", checkpoint, retry=RetryPolicy(attempts=1)):
            pass

    with pytest.raises(ServerUnavailableError):
        asyncio.run(connect())


def test_classifier_raises_model_not_ready_without_retrying_when_model_is_missing(server, checkpoint):
    started = time.monotonic()
    with pytest.raises(ModelNotReadyError) as caught:
        Classifier(server.grpc_url, checkpoint, model="no_such_model", retry=RETRY)

    assert time.monotonic() - started < 0.2
    assert "no_such_model" in caught.value.message


def test_classify_raises_invalid_input_with_the_servers_message_without_retrying_when_text_is_too_long(classifier):
    started = time.monotonic()
    with pytest.raises(InvalidInputError) as caught:
        classifier.classify(["A short text.", LONG_TEXT], truncation=False)

    assert time.monotonic() - started < 0.2 + 2.0, "not retried"
    assert caught.value.status == "INVALID_ARGUMENT"
    assert "exceeds the model's maximum of 512" in caught.value.message
    assert isinstance(caught.value, ValueError)


def test_async_classify_raises_invalid_input_when_text_is_too_long(server, checkpoint):
    async def run():
        async with AsyncClassifier(server.grpc_url, checkpoint) as client:
            await client.classify(LONG_TEXT, truncation=False)

    with pytest.raises(InvalidInputError, match="exceeds the model's maximum"):
        asyncio.run(run())


def test_classify_raises_deadline_exceeded_when_deadline_is_too_short(classifier):
    texts = [LONG_TEXT] * classifier.model.max_batch_size  # one request of max_batch_size × 512 tokens

    with pytest.raises(DeadlineExceededError) as caught:
        classifier.classify(texts, timeout_s=0.01)

    # Raised after sending: by gRPC when the deadline passed, or answered at once by the model, which saw
    # from the deadline stamp that the answer could not come in time.
    assert caught.value.status in ("DEADLINE_EXCEEDED", "CANCELLED"), "raised after sending"
    assert isinstance(caught.value, TimeoutError)
    assert classifier.classify("Still serving after a deadline.").label in classifier.model.labels


def test_async_classify_raises_deadline_exceeded_when_deadline_is_too_short(server, checkpoint):
    async def run():
        async with AsyncClassifier(server.grpc_url, checkpoint) as client:
            await client.classify([LONG_TEXT] * 64, timeout_s=0.01)

    with pytest.raises(DeadlineExceededError):
        asyncio.run(run())


def test_classify_raises_invalid_input_before_sending_when_pairs_do_not_match_texts(classifier):
    with pytest.raises(InvalidInputError, match="3 texts but 2 text pairs"):
        classifier.classify(["a", "b", "c"], text_pair=["x", "y"])
    with pytest.raises(InvalidInputError, match=r"texts\[1\] must be a str"):
        classifier.classify(["a", 2])


def test_classifier_raises_incompatible_model_when_tokenizer_vocabulary_differs(server, checkpoint):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    tokenizer.add_tokens(["<new-token>"])

    with pytest.raises(IncompatibleModelError, match="vocabulary of 30523 tokens .* trained with 30522"):
        Classifier(server.grpc_url, tokenizer)


def test_classifier_raises_incompatible_model_when_tokenizer_allows_longer_sequences(server, checkpoint):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint, model_max_length=1024)

    with pytest.raises(IncompatibleModelError, match="sequences of 1024 tokens .* at most 512"):
        Classifier(server.grpc_url, tokenizer)


def test_wait_until_ready_returns_when_server_and_model_are_ready(classifier):
    started = time.monotonic()
    classifier.wait_until_ready(timeout_s=5)
    assert time.monotonic() - started < 1


def test_wait_until_ready_raises_server_unavailable_after_timeout_when_server_is_down(checkpoint):
    started = time.monotonic()
    with pytest.raises(ServerUnavailableError, match="not ready after 1 s"):
        Classifier(f"127.0.0.1:{free_port()}", checkpoint, ready_timeout_s=1.0)
    assert 0.9 <= time.monotonic() - started < 3


def test_wait_until_ready_raises_model_not_ready_when_server_is_up_but_model_is_missing(server, checkpoint):
    with pytest.raises(ModelNotReadyError, match="'no_such_model'"):
        Classifier(server.grpc_url, checkpoint, model="no_such_model", ready_timeout_s=0.5)
