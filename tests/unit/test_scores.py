import numpy as np
import pytest

from distilbert_serving.contract import resolve_problem_type
from distilbert_serving.token_model.scores import scores_from_logits


def test_softmax_rows_sum_to_one_and_keep_order():
    scores = scores_from_logits(np.array([[1.0, 3.0, 2.0]]), "single_label_classification")
    assert scores.sum() == pytest.approx(1.0)
    assert scores.argmax() == 1


def test_sigmoid_is_independent_per_label_and_stable_for_large_logits():
    scores = scores_from_logits(np.array([[0.0, 1000.0, -1000.0]], dtype=np.float32), "multi_label_classification")
    assert scores.tolist() == [[0.5, 1.0, 0.0]]


def test_regression_returns_the_raw_value():
    assert scores_from_logits(np.array([[-2.5]]), "regression").tolist() == [[-2.5]]


@pytest.mark.parametrize(
    ("declared", "num_labels", "expected"),
    [
        (None, 1, "regression"),
        (None, 3, "single_label_classification"),
        ("multi_label_classification", 3, "multi_label_classification"),
    ],
)
def test_problem_type_follows_the_checkpoint_or_transformers_default(declared, num_labels, expected):
    assert resolve_problem_type(declared, num_labels) == expected


def test_unknown_problem_type_is_refused():
    with pytest.raises(ValueError, match="unknown problem_type"):
        resolve_problem_type("ranking", 2)
