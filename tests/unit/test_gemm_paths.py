"""Every GEMM path of the packed forward gives the transformers model's logits.

The path is chosen per CPU at load (``token_model/gemm.py``), so a machine serves with
whichever is fastest there; these tests force each path the CPU can run, so whichever
gets chosen in production has been checked against transformers here.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import DistilBertForSequenceClassification

from distilbert_serving.token_model.engine import ClassifierEngine
from distilbert_serving.token_model.gemm import GemmPathUnavailable, Linear, available_paths, choose_path
from distilbert_serving.token_model.packed import PackedClassifier, _plan
from distilbert_serving.token_model.settings import ServingSettings
from distilbert_serving.token_model.validation import Sequence
from helpers import assert_masks_with_holes_honoured, corpus_ids, reference_logits, reference_model

FP32_PATHS = available_paths(torch.device("cpu"), torch.float32)
BF16_PATHS = available_paths(torch.device("cpu"), torch.bfloat16)


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoints):
    return tiny_checkpoints["single_label_classification"]


@pytest.fixture(scope="module")
def ids(checkpoint):
    return corpus_ids(checkpoint, 48, seed=11, repeats=5)


def test_the_cpu_offers_onednn_beside_aten_in_fp32():
    assert FP32_PATHS == ("onednn", "aten")


@pytest.mark.parametrize("path", FP32_PATHS)
def test_every_fp32_gemm_path_gives_transformers_logits(checkpoint, ids, path):
    engine = ClassifierEngine.load(checkpoint, torch.device("cpu"), ServingSettings(precision="fp32"), gemm=path)
    assert engine.packed.gemm == path
    logits, _ = engine.classify([Sequence(row, None) for row in ids])
    assert np.abs(logits - reference_logits(checkpoint, [row.tolist() for row in ids])).max() <= 1e-5


@pytest.mark.parametrize("path", FP32_PATHS)
def test_every_fp32_gemm_path_honours_masks_with_holes(checkpoint, ids, path):
    engine = ClassifierEngine.load(checkpoint, torch.device("cpu"), ServingSettings(precision="fp32"), gemm=path)
    assert_masks_with_holes_honoured(engine, checkpoint, ids, rows=(0, 3, len(ids) - 2), tolerance=1e-5)


@pytest.mark.skipif(not BF16_PATHS, reason="this CPU has no bf16 GEMM path")
@pytest.mark.parametrize("path", BF16_PATHS)
def test_every_bf16_gemm_path_matches_transformers_in_bf16(checkpoint, ids, path):
    engine = ClassifierEngine.load(checkpoint, torch.device("cpu"), ServingSettings(precision="bf16"), gemm=path)
    logits, _ = engine.classify([Sequence(row, None) for row in ids])
    model = DistilBertForSequenceClassification.from_pretrained(checkpoint).to(torch.bfloat16).eval()
    with torch.inference_mode():
        expected = np.concatenate([model(torch.from_numpy(row[None])).logits.float().numpy() for row in ids])
    # Same bf16 roundings, other summation orders: measured 0 (aten) and under 1 % of the largest logit (onednn).
    assert np.abs(logits - expected).max() <= 0.02 * np.abs(expected).max()
    assert (logits.argmax(1) == expected.argmax(1)).all()


@pytest.mark.parametrize("path", FP32_PATHS)
@pytest.mark.parametrize("activation", ["gelu", "relu", None])
def test_linear_fuses_its_activation_or_residual_exactly_like_separate_ops(path, activation):
    torch.manual_seed(0)
    weight, bias, x = torch.randn(96, 64), torch.randn(96), torch.randn(37, 64)
    linear = Linear(weight, bias, path)
    plain = F.linear(x, weight, bias)
    expected = {"gelu": F.gelu(plain), "relu": torch.relu(plain), None: plain}[activation]
    assert torch.allclose(linear(x, activation), expected, atol=1e-5)
    residual = torch.randn(37, 96)
    assert torch.allclose(Linear(weight, bias, path)(x, residual=residual), plain + residual, atol=1e-5)


@pytest.mark.parametrize("path", FP32_PATHS)
def test_linear_runs_an_activation_onednn_cannot_fuse_through_the_fallback(path):
    weight, bias, x = torch.randn(8, 4), torch.randn(8), torch.randn(3, 4)
    got = Linear(weight, bias, path)(x, "silu", fallback=F.silu)
    assert torch.allclose(got, F.silu(F.linear(x, weight, bias)), atol=1e-6)


def test_auto_times_every_available_path_and_keeps_one_of_them():
    lin1 = (torch.randn(128, 32), torch.randn(128))
    lin2 = (torch.randn(32, 128), torch.randn(32))
    path, timings = choose_path("auto", torch.device("cpu"), torch.float32, lin1, lin2, "gelu", rows=64, rounds=2)
    assert path in FP32_PATHS
    assert set(timings) == set(FP32_PATHS)
    assert all(ms > 0 for ms in timings.values())


def test_a_forced_path_is_used_without_timing():
    lin = (torch.randn(8, 8), None)
    assert choose_path("aten", torch.device("cpu"), torch.float32, lin, lin, "gelu") == ("aten", {})


def test_a_forced_path_the_device_cannot_run_is_refused_with_the_alternatives():
    lin = (torch.randn(8, 8), None)
    with pytest.raises(GemmPathUnavailable, match="available: aten"):
        choose_path("onednn", torch.device("cuda"), torch.float32, lin, lin, "gelu")


def test_an_unknown_gemm_choice_names_the_allowed_ones():
    lin = (torch.randn(8, 8), None)
    with pytest.raises(ValueError, match="auto, onednn, aten"):
        choose_path("mkl", torch.device("cpu"), torch.float32, lin, lin, "gelu")


def test_the_chosen_path_is_readable_and_logged(checkpoint):
    packed = PackedClassifier(reference_model(checkpoint), gemm="aten")
    assert packed.gemm == "aten"
    assert packed.gemm_choice == "GEMM aten (forced)"
    auto = PackedClassifier(reference_model(checkpoint))
    assert auto.gemm in FP32_PATHS and auto.gemm in auto.gemm_choice


def test_chunks_of_equal_lengths_attend_without_mask_or_copy():
    ids = [np.arange(5), np.arange(5), np.arange(9), np.arange(7)]
    plan = _plan(ids, [None] * 4, [np.array([0, 1]), np.array([3, 2])], round_sizes=True)
    equal, mixed = plan.chunks
    assert (equal.gather, equal.keep, equal.key_mask) == (None, None, None)
    assert equal.length == 5 and (equal.first_row, equal.tokens) == (0, 10)
    assert mixed.gather is not None and mixed.key_mask is not None and mixed.length >= 9
    assert (mixed.first_row, mixed.tokens) == (10, 16)


def test_every_index_of_a_forward_is_in_one_integer_buffer():
    ids = [np.arange(3), np.arange(6)]
    mask = np.array([1, 0, 1])
    plan = _plan(ids, [mask, None], [np.array([0]), np.array([1])], round_sizes=False)
    assert plan.host.dtype == np.int64 and plan.host.ndim == 1
    token_ids, positions, first_tokens, inverse = (plan.host[s] for s in plan.slices)
    assert token_ids.tolist() == [0, 1, 2, 0, 1, 2, 3, 4, 5]
    assert positions.tolist() == [0, 1, 2, 0, 1, 2, 3, 4, 5]
    assert first_tokens.tolist() == [0, 3] and inverse.tolist() == [0, 1]
    assert plan.host[plan.chunks[0].key_mask].tolist() == [1, 0, 1]


@pytest.mark.parametrize("activation", ["gelu", None])
def test_int8_linear_stays_within_its_quantization_error_and_applies_activation_and_residual(activation):
    torch.manual_seed(0)
    weight, bias, x = torch.randn(96, 64) * 0.05, torch.randn(96) * 0.05, torch.randn(37, 64)
    plain = F.linear(x, weight, bias)
    linear = Linear(weight, bias, "int8")
    # int8 weights per row and int8 activations per token: measured 0.6 % of the output's range.
    got = linear(x, activation)
    expected = F.gelu(plain) if activation else plain
    assert (got - expected).abs().max() <= 0.02 * expected.abs().max()
    residual = torch.randn(37, 96)
    assert torch.allclose(linear(x, residual=residual), linear(x) + residual, atol=1e-6)


def test_int8_linear_answers_a_row_the_same_whatever_rows_share_its_call():
    # Each row is quantized on its own scale: a text's answer must not move with the texts batched beside it.
    torch.manual_seed(0)
    weight, bias = torch.randn(96, 64) * 0.05, torch.randn(96) * 0.05
    batch = torch.randn(37, 64)
    batch[5] *= 50  # one row with far larger activations, which a scale shared by the batch would follow
    linear = Linear(weight, bias, "int8")
    together = linear(batch)
    assert torch.equal(torch.cat([linear(batch[i : i + 1]) for i in range(37)]), together)


def test_int8_engine_keeps_the_head_in_fp32_and_agrees_with_transformers(checkpoint, ids):
    engine = ClassifierEngine.load(checkpoint, torch.device("cpu"), ServingSettings(precision="int8"))
    assert engine.packed.gemm == "int8" and "int8" in engine.packed.gemm_choice
    assert engine.packed.layers[0].lin1.path == "int8" and engine.packed.classifier.path == "aten"
    logits, _ = engine.classify([Sequence(row, None) for row in ids])
    expected = reference_logits(checkpoint, [row.tolist() for row in ids])
    # Measured 0.05 % of the largest logit on this checkpoint; real weights: docs/BENCHMARKS.md (precision report).
    assert np.abs(logits - expected).max() <= 0.01 * np.abs(expected).max()
    assert (logits.argmax(1) == expected.argmax(1)).all()


def test_int8_is_refused_on_a_gpu():
    lin = (torch.randn(8, 8), None)
    with pytest.raises(GemmPathUnavailable, match="int8 runs on the CPU only"):
        choose_path("int8", torch.device("cuda"), torch.float32, lin, lin, "gelu")
