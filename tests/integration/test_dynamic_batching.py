"""Concurrent requests of mixed lengths are served together, each with its own answer."""

from __future__ import annotations

import queue
import threading

import numpy as np
import tritonclient.grpc as grpcclient

from distilbert_serving.corpus import english_texts
from helpers import reference_logits, token_ids


def counts(client, model: str) -> tuple[int, int]:
    stats = client.get_inference_statistics(model, as_json=True)["model_stats"][0]
    return int(stats.get("inference_count", 0)), int(stats.get("execution_count", 0))


def test_128_mixed_length_requests_64_at_a_time_are_batched_and_answered_correctly(
    server, grpc_client, tiny_checkpoints
):
    checkpoint = tiny_checkpoints["single_label_classification"]
    ids = token_ids(checkpoint, english_texts(128, seed=3))
    assert len({len(row) for row in ids}) > 20

    before = counts(grpc_client, "distilbert_classifier")
    done: queue.Queue = queue.Queue()
    # At most 64 in flight: the default export refuses requests beyond its bounded queue (64 waiting).
    slots = threading.Semaphore(64)

    def finished(result, error, index):
        slots.release()
        done.put((index, result, error))

    for index, row in enumerate(ids):
        request = grpcclient.InferInput("input_ids", [1, len(row)], "INT64")
        request.set_data_from_numpy(np.array([row], dtype=np.int64))
        assert slots.acquire(timeout=120)
        grpc_client.async_infer(
            "distilbert_classifier",
            [request],
            callback=lambda result, error, index=index: finished(result, error, index),
            outputs=[grpcclient.InferRequestedOutput("logits")],
        )
    served = np.zeros((len(ids), 3), dtype=np.float32)
    for _ in ids:
        index, result, error = done.get(timeout=120)
        assert error is None, error
        served[index] = result.as_numpy("logits")[0]
    inferences, executions = (
        after - prior for after, prior in zip(counts(grpc_client, "distilbert_classifier"), before, strict=True)
    )

    assert inferences == len(ids)
    assert executions <= inferences / 2, f"{executions} executions for {inferences} requests"
    assert np.abs(served - reference_logits(checkpoint, ids)).max() <= 1e-4
