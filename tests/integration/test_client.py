"""The Python client against a real server: the same answers as transformers in-process."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pytest

from distilbert_client import AsyncClassifier, Classification, Classifier
from distilbert_serving.corpus import english_texts
from helpers import MODELS, reference_logits, tokenizer

TOLERANCE = 1e-4
SINGLE = "single_label_classification"
MULTI = "multi_label_classification"
REGRESSION = "regression"


@pytest.fixture(scope="module")
def texts() -> list[str]:
    texts = english_texts(150, seed=7)
    texts.append(" ".join(english_texts(400, seed=8)))  # longer than 512 tokens: truncated
    return texts


@pytest.fixture(scope="module")
def classifier(server, tiny_checkpoints):
    with Classifier(server.grpc_url, tiny_checkpoints[SINGLE]) as classifier:
        yield classifier


def logits_of(results: list[Classification]) -> np.ndarray:
    return np.array([r.logits for r in results])


def test_classifier_learns_labels_limits_and_problem_type_from_the_server(classifier):
    info = classifier.model
    assert info.labels == ("negative", "neutral", "positive")
    assert info.problem_type == SINGLE
    assert (info.max_batch_size, info.max_sequence_length, info.vocab_size) == (16, 512, 30522)
    assert info.input_names == ("input_ids", "attention_mask")


def test_classify_matches_in_process_transformers_when_given_one_text(classifier, tiny_checkpoints):
    checkpoint = tiny_checkpoints[SINGLE]
    text = "The service answered every well-formed request."

    result = classifier.classify(text)

    expected = reference_logits(checkpoint, tokenizer(checkpoint)([text], truncation=True)["input_ids"])[0]
    assert isinstance(result, Classification)
    assert np.abs(np.array(result.logits) - expected).max() <= TOLERANCE
    assert result.label == classifier.model.labels[int(np.argmax(expected))]
    assert result.labels == (result.label,)
    assert list(result.scores) == ["negative", "neutral", "positive"]
    assert result.score == max(result.scores.values()) == result.top[0].score
    assert sum(result.scores.values()) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.label = "positive"


def test_classify_matches_in_process_in_input_order_when_list_is_longer_than_max_batch_size(
    classifier, tiny_checkpoints, texts
):
    checkpoint = tiny_checkpoints[SINGLE]
    ids = tokenizer(checkpoint)(texts, truncation=True)["input_ids"]
    assert len(texts) > 2 * classifier.model.max_batch_size
    assert max(len(row) for row in ids) == 512 and len({len(row) for row in ids}) > 30

    results = classifier.classify(texts)

    assert len(results) == len(texts)
    # Row i equals the reference of text i: the length-sorted requests were put back in order.
    assert np.abs(logits_of(results) - reference_logits(checkpoint, ids)).max() <= TOLERANCE


def test_classify_matches_in_process_when_given_text_pairs(classifier, tiny_checkpoints, texts):
    checkpoint = tiny_checkpoints[SINGLE]
    first, second = texts[:70], texts[70:140]
    ids = tokenizer(checkpoint)(first, second, truncation=True)["input_ids"]
    assert ids[0].count(102) == 2, "a pair is [CLS] a [SEP] b [SEP]"

    results = classifier.classify(first, text_pair=second)
    single = classifier.classify(first[0], text_pair=second[0])

    assert np.abs(logits_of(results) - reference_logits(checkpoint, ids)).max() <= TOLERANCE
    assert np.abs(np.array(single.logits) - np.array(results[0].logits)).max() <= TOLERANCE


@pytest.mark.parametrize("side", ["left", "right"])
def test_classify_truncates_on_the_requested_side_when_text_is_too_long(classifier, tiny_checkpoints, texts, side):
    checkpoint = tiny_checkpoints[SINGLE]
    long_text = texts[-1]
    reference_tokenizer = tokenizer(checkpoint)
    reference_tokenizer.truncation_side = side
    try:
        ids = reference_tokenizer([long_text], truncation=True)["input_ids"]
    finally:
        reference_tokenizer.truncation_side = "right"

    result = classifier.classify(long_text, truncation=side)

    assert np.abs(np.array(result.logits) - reference_logits(checkpoint, ids)[0]).max() <= TOLERANCE


def test_classify_returns_top_k_labels_best_first_when_top_k_is_given(classifier):
    result = classifier.classify("A short text.", top_k=2)

    assert len(result.top) == 2
    assert result.top[0].score >= result.top[1].score
    assert result.top[0].label == result.label
    assert len(result.scores) == 3


def test_classify_returns_labels_above_threshold_when_model_is_multi_label(server, tiny_checkpoints, texts):
    checkpoint = tiny_checkpoints[MULTI]
    with Classifier(server.grpc_url, checkpoint, model=MODELS[MULTI]) as classifier:
        results = classifier.classify(texts[:20], threshold=0.42)

    ids = tokenizer(checkpoint)(texts[:20], truncation=True)["input_ids"]
    expected = reference_logits(checkpoint, ids)
    assert np.abs(logits_of(results) - expected).max() <= TOLERANCE
    for result, logits in zip(results, expected, strict=True):
        probabilities = 1 / (1 + np.exp(-logits))
        names = ["toxic", "obscene", "threat", "insult"]
        above = sorted((p, -i) for i, p in enumerate(probabilities) if p >= 0.42)
        assert result.labels == tuple(names[-i] for _, i in reversed(above))
        assert result.value is None
    assert any(0 < len(r.labels) < 4 for r in results), "the threshold must separate some labels"


def test_classify_returns_the_value_when_model_is_regression(server, tiny_checkpoints, texts):
    checkpoint = tiny_checkpoints[REGRESSION]
    with Classifier(server.grpc_url, checkpoint, model=MODELS[REGRESSION]) as classifier:
        results = classifier.classify(texts[:10])

    expected = reference_logits(checkpoint, tokenizer(checkpoint)(texts[:10], truncation=True)["input_ids"])
    assert [r.value for r in results] == pytest.approx(expected[:, 0].tolist(), abs=TOLERANCE)
    assert all(r.labels == () and r.label == "score" and r.score == r.value for r in results)


def test_async_classifier_gives_the_same_results_as_the_sync_one(server, tiny_checkpoints, classifier, texts):
    checkpoint = tiny_checkpoints[SINGLE]
    sync_many = classifier.classify(texts)
    sync_one = classifier.classify(texts[0], top_k=1)
    sync_pairs = classifier.classify(texts[:5], text_pair=texts[5:10])

    async def run():
        async with AsyncClassifier(server.grpc_url, checkpoint, max_concurrency=3) as client:
            return await asyncio.gather(
                client.classify(texts),
                client.classify(texts[0], top_k=1),
                client.classify(texts[:5], text_pair=texts[5:10]),
            )

    async_many, async_one, async_pairs = asyncio.run(run())

    for sync, other in [(sync_many, async_many), (sync_pairs, async_pairs)]:
        assert [r.label for r in sync] == [r.label for r in other]
        # Requests may share different dynamic batches: equal to float32 rounding.
        assert np.abs(logits_of(sync) - logits_of(other)).max() <= 1e-5
    assert isinstance(async_one, Classification) and async_one.label == sync_one.label and len(async_one.top) == 1


def test_classify_returns_an_empty_list_when_given_no_texts(classifier):
    assert classifier.classify([]) == []
