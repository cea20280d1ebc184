"""Results are typed, immutable and say what each problem type predicts."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest

from distilbert_client import Classification, LabelScore
from distilbert_client._results import build_result

LABELS = ("toxic", "obscene", "threat", "insult")


def test_build_result_ranks_labels_and_predicts_the_top_one_when_single_label():
    result = build_result(
        "single_label_classification", ("neg", "neu", "pos"), np.array([0.1, -1.0, 2.0]), np.array([0.2, 0.1, 0.7])
    )

    assert (result.label, result.labels, result.value) == ("pos", ("pos",), None)
    assert result.score == pytest.approx(0.7)
    assert [s.label for s in result.top] == ["pos", "neg", "neu"]
    assert dict(result.scores) == pytest.approx({"neg": 0.2, "neu": 0.1, "pos": 0.7})
    assert result.logits == pytest.approx((0.1, -1.0, 2.0))


def test_build_result_predicts_every_label_above_threshold_best_first_when_multi_label():
    scores = np.array([0.6, 0.1, 0.9, 0.5])

    result = build_result("multi_label_classification", LABELS, np.zeros(4), scores, threshold=0.5)

    assert result.labels == ("threat", "toxic", "insult")
    assert build_result("multi_label_classification", LABELS, np.zeros(4), scores, threshold=0.95).labels == ()


def test_build_result_gives_the_value_when_regression():
    result = build_result("regression", ("score",), np.array([3.25]), np.array([3.25]))

    assert (result.value, result.label, result.score, result.labels) == (3.25, "score", 3.25, ())


def test_build_result_keeps_top_k_labels_when_top_k_is_given():
    result = build_result("multi_label_classification", LABELS, np.zeros(4), np.array([0.6, 0.1, 0.9, 0.5]), top_k=2)

    assert result.top == (LabelScore("threat", pytest.approx(0.9)), LabelScore("toxic", pytest.approx(0.6)))
    assert len(result.scores) == 4


def test_classification_cannot_be_changed_and_survives_pickling():
    result = build_result("single_label_classification", ("a", "b"), np.array([0.0, 1.0]), np.array([0.3, 0.7]))

    with pytest.raises(dataclasses.FrozenInstanceError):
        result.label = "a"
    with pytest.raises(TypeError):
        result.scores["a"] = 1.0
    copy = pickle.loads(pickle.dumps(result))
    assert copy == result and isinstance(copy, Classification)
    assert hash(copy) == hash(result)


def test_to_dict_is_json_ready_and_names_what_the_problem_type_predicts():
    multi = build_result("multi_label_classification", LABELS, np.zeros(4), np.array([0.6, 0.1, 0.9, 0.5]))
    regression = build_result("regression", ("score",), np.array([1.5]), np.array([1.5]))

    assert set(multi.to_dict()) == {"label", "score", "scores", "labels", "logits"}
    assert regression.to_dict()["value"] == 1.5 and "labels" not in regression.to_dict()
