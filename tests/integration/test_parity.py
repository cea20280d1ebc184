"""Served fp32 logits equal in-process transformers on the same checkpoint; served int8 equals the int8 engine."""

from __future__ import annotations

import re
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from distilbert_serving.corpus import english_texts
from distilbert_serving.outcomes import FLUSH_S
from distilbert_serving.token_model.precision import PRECISIONS, Hardware, auto_precision, cpu_flags
from helpers import AUTO_MODEL, INT8_MODEL, infer_ids, reference_logits, token_ids

TOLERANCE = 1e-4
SINGLE = "single_label_classification"


@pytest.fixture(scope="module")
def texts() -> list[str]:
    texts = english_texts(60, seed=1)
    texts.append(" ".join(english_texts(400, seed=2)))  # one text truncated at 512 tokens
    return texts


def test_served_logits_match_in_process_when_60_texts_are_sent_concurrently(
    server, grpc_client, tiny_checkpoints, texts
):
    checkpoint = tiny_checkpoints[SINGLE]
    ids = token_ids(checkpoint, texts)
    assert len({len(row) for row in ids}) > 20, "the texts must have varied lengths"
    assert max(len(row) for row in ids) == 512

    def call(row):
        return infer_ids(grpc_client, "distilbert_classifier", np.array([row], dtype=np.int64)).as_numpy("logits")[0]

    with ThreadPoolExecutor(max_workers=16) as pool:
        served = np.stack(list(pool.map(call, ids)))

    expected = reference_logits(checkpoint, ids)
    assert np.abs(served - expected).max() <= TOLERANCE


def test_served_int8_equals_the_in_process_int8_engine_and_stays_near_fp32(grpc_client, tiny_checkpoints, texts):
    import torch

    from distilbert_serving.token_model.engine import ClassifierEngine
    from distilbert_serving.token_model.settings import ServingSettings
    from distilbert_serving.token_model.validation import Sequence

    checkpoint = tiny_checkpoints[SINGLE]
    ids = token_ids(checkpoint, texts[:20])
    served = np.stack([infer_ids(grpc_client, INT8_MODEL, np.array([row])).as_numpy("logits")[0] for row in ids])

    engine = ClassifierEngine.load(checkpoint, torch.device("cpu"), ServingSettings(precision="int8"))
    in_process = np.concatenate([engine.classify([Sequence(np.array(row), None)])[0] for row in ids])
    assert np.abs(served - in_process).max() <= 1e-5
    expected = reference_logits(checkpoint, ids)
    assert np.abs(served - expected).max() <= 0.01 * np.abs(expected).max()
    assert (served.argmax(1) == expected.argmax(1)).all()


def test_padded_multi_row_request_matches_in_process_per_row(grpc_client, tiny_checkpoints, texts):
    checkpoint = tiny_checkpoints[SINGLE]
    ids = token_ids(checkpoint, texts[:12])
    longest = max(len(row) for row in ids)
    padded = np.zeros((len(ids), longest), dtype=np.int64)
    mask = np.zeros_like(padded)
    for r, row in enumerate(ids):
        padded[r, : len(row)] = row
        mask[r, : len(row)] = 1

    served = infer_ids(grpc_client, "distilbert_classifier", padded, mask).as_numpy("logits")

    assert served.shape == (12, 3)
    assert np.abs(served - reference_logits(checkpoint, ids)).max() <= TOLERANCE


def test_mask_with_holes_matches_in_process_with_the_same_mask(grpc_client, tiny_checkpoints):
    import torch

    from helpers import reference_model

    checkpoint = tiny_checkpoints[SINGLE]
    ids = np.array([token_ids(checkpoint, ["a mask may leave out tokens in the middle of a text"])[0]], dtype=np.int64)
    mask = np.ones_like(ids)
    mask[0, 3:6] = 0

    served = infer_ids(grpc_client, "distilbert_classifier", ids, mask).as_numpy("logits")

    with torch.inference_mode():
        expected = reference_model(checkpoint)(torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits
    assert np.abs(served - expected.numpy()).max() <= TOLERANCE


def test_classification_extension_returns_top_k_labels_from_labels_file(grpc_client, tiny_checkpoints):
    import tritonclient.grpc as grpcclient

    checkpoint = tiny_checkpoints[SINGLE]
    ids = np.array(token_ids(checkpoint, ["I love this movie"]), dtype=np.int64)
    inputs = [grpcclient.InferInput("input_ids", list(ids.shape), "INT64")]
    inputs[0].set_data_from_numpy(ids)
    outputs = [grpcclient.InferRequestedOutput("probabilities", class_count=2)]

    top = grpc_client.infer("distilbert_classifier", inputs, outputs=outputs).as_numpy("probabilities")[0]

    probabilities = infer_ids(grpc_client, "distilbert_classifier", ids).as_numpy("probabilities")[0]
    labels = ["negative", "neutral", "positive"]
    expected = [int(i) for i in np.argsort(-probabilities)[:2]]
    decoded = [entry.decode().split(":") for entry in top]
    assert [int(index) for _, index, _ in decoded] == expected
    assert [label for _, _, label in decoded] == [labels[i] for i in expected]
    assert [float(score) for score, _, _ in decoded] == pytest.approx([probabilities[i] for i in expected], abs=1e-6)


def test_served_auto_runs_the_precision_this_cpu_calls_for_and_its_counters_name_it(
    server, grpc_client, tiny_checkpoints, texts
):
    checkpoint = tiny_checkpoints["single_label_classification"]
    ids = token_ids(checkpoint, texts[:8])
    served = np.stack([infer_ids(grpc_client, AUTO_MODEL, np.array([row])).as_numpy("logits")[0] for row in ids])
    time.sleep(FLUSH_S + 0.2)  # the model sends its counters every FLUSH_S
    with urllib.request.urlopen(server.metrics_url, timeout=10) as response:
        metrics = response.read().decode()
    labels = re.findall(rf'clf_forward_passes_total{{([^}}]*model="{AUTO_MODEL}"[^}}]*)}}', metrics)
    precisions = {re.search(r'precision="(\w+)"', found).group(1) for found in labels}

    expected = auto_precision(Hardware("cpu", cpu_flags=cpu_flags()))
    assert precisions == {expected}, labels
    reference = reference_logits(checkpoint, ids)
    if PRECISIONS[expected].exact:
        assert np.abs(served - reference).max() <= 1e-4
    else:  # bf16 on a CPU with AMX
        assert (served.argmax(-1) == reference.argmax(-1)).mean() >= 0.75 and np.abs(served - reference).max() <= 0.1
