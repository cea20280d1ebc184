"""The packed forward gives the transformers model's logits, whatever the lengths and masks."""

import numpy as np
import pytest
import torch

from distilbert_serving.token_model.engine import ClassifierEngine
from distilbert_serving.token_model.settings import ServingSettings
from distilbert_serving.token_model.validation import Sequence
from helpers import assert_masks_with_holes_honoured, corpus_ids, reference_logits, reference_model


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoints):
    return tiny_checkpoints["multi_label_classification"]


@pytest.fixture(scope="module")
def ids(checkpoint):
    return corpus_ids(checkpoint, 40, seed=6)


@pytest.mark.parametrize("mode", ["packed", "varlen", "padded"])
def test_engine_logits_match_transformers_one_text_at_a_time(checkpoint, ids, mode):
    engine = ClassifierEngine.load(
        checkpoint, torch.device("cpu"), ServingSettings(precision="fp32", forward_mode=mode)
    )
    logits, stats = engine.classify([Sequence(row, None) for row in ids])
    assert np.abs(logits - reference_logits(checkpoint, [row.tolist() for row in ids])).max() <= 1e-5
    assert sum(s.rows for s in stats) == len(ids)


def test_packed_forward_pads_dense_layers_by_at_most_an_eighth(checkpoint, ids):
    engine = ClassifierEngine.load(
        checkpoint, torch.device("cpu"), ServingSettings(precision="fp32", forward_mode="packed")
    )
    _, stats = engine.classify([Sequence(row, None) for row in ids])
    assert sum(s.real_tokens for s in stats) == sum(len(row) for row in ids)
    for forward in stats:
        assert forward.real_tokens <= forward.padded_tokens <= 1.125 * forward.real_tokens


@pytest.mark.parametrize("mode", ["packed", "varlen"])
def test_packed_forward_honours_masks_with_holes(checkpoint, ids, mode):
    engine = ClassifierEngine.load(
        checkpoint, torch.device("cpu"), ServingSettings(precision="fp32", forward_mode=mode)
    )
    assert_masks_with_holes_honoured(engine, checkpoint, ids, rows=(0, 5, 9), tolerance=1e-5)


def test_token_budget_splits_a_large_batch_without_changing_answers(checkpoint, ids):
    small = ServingSettings(precision="fp32", forward_mode="packed", max_forward_tokens=256)
    engine = ClassifierEngine.load(checkpoint, torch.device("cpu"), small)
    logits, stats = engine.classify([Sequence(row, None) for row in ids])
    assert len(stats) > 3
    assert all(s.real_tokens <= 256 or s.rows == 1 for s in stats)
    assert np.abs(logits - reference_logits(checkpoint, [row.tolist() for row in ids])).max() <= 1e-5


def test_packed_forward_plans_exact_lengths_as_on_a_gpu_with_the_same_logits(checkpoint, ids):
    # On a GPU nothing is rounded up (no heap to protect), so more chunks run without a mask.
    engine = ClassifierEngine.load(
        checkpoint, torch.device("cpu"), ServingSettings(precision="fp32", forward_mode="packed")
    )
    engine.packed.round_sizes = False
    logits, stats = engine.classify([Sequence(row, None) for row in ids])
    assert np.abs(logits - reference_logits(checkpoint, [row.tolist() for row in ids])).max() <= 1e-5
    assert sum(s.padded_tokens for s in stats) == sum(len(row) for row in ids)


# Operations that make the host wait for a GPU: boolean-mask indexing (nonzero) and reading a value back.
HOST_WAITS = {"aten::nonzero", "aten::item", "aten::_local_scalar_dense", "aten::masked_select"}


def test_packed_forward_runs_no_operation_that_would_wait_for_a_gpu(checkpoint, ids):
    # forward_mode varlen: on the CPU its jagged attention falls back to per-sequence math, which reads
    # lengths back; its CUDA kernels take the host's offsets (tests/gpu checks it there).
    engine = ClassifierEngine.load(
        checkpoint, torch.device("cpu"), ServingSettings(precision="fp32", forward_mode="packed")
    )
    masks = [None] * len(ids)
    masks[2] = np.ones(len(ids[2]), dtype=np.int64)
    masks[2][1] = 0
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        engine.packed.logits(ids, masks)
    assert HOST_WAITS.isdisjoint(event.key for event in profile.key_averages())


def test_varlen_attention_is_one_call_per_layer_and_packs_only_attended_tokens(checkpoint, ids, monkeypatch):
    engine = ClassifierEngine.load(
        checkpoint, torch.device("cpu"), ServingSettings(precision="fp32", forward_mode="varlen")
    )
    masks = [None] * len(ids)
    masks[3] = np.ones(len(ids[3]), dtype=np.int64)
    masks[3][1:3] = 0
    calls, attention = [], torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(
        torch.nn.functional, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or attention(*a, **k)
    )
    _, stats = engine.packed.logits(ids, masks)
    assert len(calls) == len(engine.packed.layers)
    assert stats.real_tokens == stats.dense_tokens == sum(len(row) for row in ids) - 2


def test_varlen_forward_takes_the_chunks_when_a_first_token_is_masked(checkpoint, ids):
    # [CLS] masked out is still the query the classifier reads, which a packing without it cannot give.
    engine = ClassifierEngine.load(
        checkpoint, torch.device("cpu"), ServingSettings(precision="fp32", forward_mode="varlen")
    )
    mask = np.ones(len(ids[0]), dtype=np.int64)
    mask[0] = 0
    logits, _ = engine.classify([Sequence(ids[0], mask), *(Sequence(row, None) for row in ids[1:4])])
    model = reference_model(checkpoint)
    with torch.inference_mode():
        expected = model(torch.from_numpy(ids[0][None]), attention_mask=torch.from_numpy(mask[None])).logits[0]
    assert np.abs(logits[0] - expected.numpy()).max() <= 1e-5
