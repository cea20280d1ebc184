"""Each problem type is served with its own score function and its label names."""

from __future__ import annotations

import json

import numpy as np
import pytest

from distilbert_serving.corpus import english_texts
from helpers import MODELS, infer_ids, reference_logits, token_ids


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


SCORE = {
    "single_label_classification": softmax,
    "multi_label_classification": sigmoid,
    "regression": lambda x: x,
}
LABELS = {
    "single_label_classification": ["negative", "neutral", "positive"],
    "multi_label_classification": ["toxic", "obscene", "threat", "insult"],
    "regression": ["score"],
}


@pytest.mark.parametrize("problem_type", sorted(MODELS))
def test_probabilities_apply_the_problem_types_score_function(grpc_client, tiny_checkpoints, problem_type):
    checkpoint = tiny_checkpoints[problem_type]
    texts = english_texts(8, seed=4)
    ids = token_ids(checkpoint, texts)
    results = [infer_ids(grpc_client, MODELS[problem_type], np.array([row], dtype=np.int64)) for row in ids]
    logits = np.concatenate([r.as_numpy("logits") for r in results])
    probabilities = np.concatenate([r.as_numpy("probabilities") for r in results])

    expected_logits = reference_logits(checkpoint, ids)
    assert logits.shape == (len(texts), len(LABELS[problem_type]))
    assert np.abs(logits - expected_logits).max() <= 1e-4
    assert np.abs(probabilities - SCORE[problem_type](expected_logits)).max() <= 1e-5
    if problem_type == "single_label_classification":
        assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    if problem_type == "multi_label_classification":
        assert not np.allclose(probabilities.sum(axis=1), 1, atol=1e-2), "labels are independent, not a distribution"


@pytest.mark.parametrize("problem_type", sorted(MODELS))
def test_model_config_publishes_what_clients_need(grpc_client, problem_type):
    config = grpc_client.get_model_config(MODELS[problem_type], as_json=True)["config"]
    parameters = {key: value["string_value"] for key, value in config["parameters"].items()}

    assert parameters["problem_type"] == problem_type
    assert json.loads(parameters["labels"]) == LABELS[problem_type]
    assert parameters["num_labels"] == str(len(LABELS[problem_type]))
    assert parameters["max_sequence_length"] == "512"
    assert parameters["vocab_size"] == "30522"
    assert {o["name"]: o["label_filename"] for o in config["output"]} == {
        "logits": "labels.txt",
        "probabilities": "labels.txt",
    }
