"""The packed forward on a GPU: transformers' logits in fp32, close ones in bf16 and fp16, no host waits.

Skipped without CUDA. fp32 runs with TF32 off (``tf32=False``; served GPU instances have it on),
so 1e-4 against CPU transformers is a tight bound. The full-size random checkpoint
(``GPU_CHECK_CHECKPOINT``, when set) has 12 heads of 64: the shape the GPU's fused
attention kernels take; the tiny one has heads of 16.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from distilbert_serving.token_model.device import UnsupportedPrecision, prepare_device
from distilbert_serving.token_model.engine import ClassifierEngine
from distilbert_serving.token_model.settings import ServingSettings
from distilbert_serving.token_model.validation import Sequence
from helpers import assert_masks_with_holes_honoured, corpus_ids, reference_logits

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device: the packed forward's GPU checks need one"
)

FP32_TOLERANCE = 1e-4
# max |Δlogit| as a fraction of the largest fp32 logit. Measured on the CPU with the real checkpoint
# (logits up to ~28): bf16 0.9 %, fp16 0.13 %; the GPU accumulates in fp32 as well.
REDUCED_TOLERANCE = {"bf16": 0.03, "fp16": 0.005}
# A text may change its top label only when fp32 itself barely separates the top two.
FLIP_MARGIN = 0.5


@pytest.fixture(scope="module", params=["tiny", "full"])
def checkpoint(request) -> Path:
    if request.param == "tiny":
        return request.getfixturevalue("tiny_checkpoints")["single_label_classification"]
    if not os.environ.get("GPU_CHECK_CHECKPOINT"):
        pytest.skip("GPU_CHECK_CHECKPOINT (a full-size checkpoint) is not set")
    return Path(os.environ["GPU_CHECK_CHECKPOINT"])


@pytest.fixture(scope="module")
def ids(checkpoint) -> list[np.ndarray]:
    return corpus_ids(checkpoint, 64, seed=3, repeats=6)


def load(checkpoint: Path, device: torch.device, precision: str = "fp32", **settings) -> ClassifierEngine:
    return ClassifierEngine.load(checkpoint, device, ServingSettings(precision=precision, **settings), tf32=False)


@pytest.mark.parametrize("mode", ["packed", "varlen", "padded"])
def test_gpu_logits_match_cpu_transformers_within_1e4_in_fp32(checkpoint, ids, cuda_device, mode):
    engine = load(checkpoint, cuda_device, forward_mode=mode)
    assert engine.packed.gemm == "aten"  # cuBLAS: the oneDNN path is the CPU's
    logits, _ = engine.classify([Sequence(row, None) for row in ids])
    expected = reference_logits(checkpoint, [row.tolist() for row in ids])
    assert np.abs(logits - expected).max() <= FP32_TOLERANCE


@pytest.mark.parametrize("mode", ["packed", "varlen"])
def test_gpu_packed_forward_honours_masks_with_holes(checkpoint, ids, cuda_device, mode):
    engine = load(checkpoint, cuda_device, forward_mode=mode)
    assert_masks_with_holes_honoured(engine, checkpoint, ids, rows=(0, 7, len(ids) - 2), tolerance=FP32_TOLERANCE)


@pytest.mark.parametrize("mode", ["packed", "varlen"])
def test_a_packed_forward_never_waits_for_the_gpu(checkpoint, ids, cuda_device, mode):
    engine = load(checkpoint, cuda_device, forward_mode=mode)
    masks = [None] * len(ids)
    masks[3] = np.ones(len(ids[3]), dtype=np.int64)
    masks[3][1] = 0
    engine.packed.logits(ids, masks)  # warm-up: cuBLAS handles, allocator pools
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any host-device synchronisation raises
    try:
        logits, _ = engine.packed.logits(ids, masks)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert logits.device.type == "cuda" and logits.shape[0] == len(ids)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_on_the_gpu_keeps_real_weights_logits_close_and_labels_equal(
    real_checkpoint, real_ids, real_reference, cuda_device, precision
):
    if precision == "bf16" and torch.cuda.get_device_capability(cuda_device) < (8, 0):
        pytest.skip("this GPU has no native bf16")
    engine = load(real_checkpoint, cuda_device, precision)
    logits, _ = engine.classify([Sequence(np.array(row, dtype=np.int64), None) for row in real_ids])
    delta = np.abs(logits - real_reference).max()
    assert delta <= REDUCED_TOLERANCE[precision] * np.abs(real_reference).max()
    top2 = np.sort(real_reference, axis=1)[:, -2:]
    margins = top2[:, 1] - top2[:, 0]
    flipped = logits.argmax(1) != real_reference.argmax(1)
    assert flipped.mean() <= 0.01
    assert (margins[flipped] < FLIP_MARGIN).all(), margins[flipped]


def test_real_weights_match_cpu_transformers_within_1e4_in_fp32(real_checkpoint, real_ids, real_reference, cuda_device):
    engine = load(real_checkpoint, cuda_device)
    logits, _ = engine.classify([Sequence(np.array(row, dtype=np.int64), None) for row in real_ids])
    assert np.abs(logits - real_reference).max() <= FP32_TOLERANCE


def test_bf16_is_accepted_exactly_on_gpus_with_native_bf16(cuda_device):
    if torch.cuda.get_device_capability(cuda_device) >= (8, 0):
        prepare_device(cuda_device, "bf16")
    else:
        with pytest.raises(UnsupportedPrecision, match="compute capability 8.0"):
            prepare_device(cuda_device, "bf16")


def test_tf32_is_on_for_gpu_instances_unless_turned_off(checkpoint, cuda_device):
    load(checkpoint, cuda_device)
    assert torch.backends.cuda.matmul.allow_tf32 is False
    ClassifierEngine.load(checkpoint, cuda_device, ServingSettings(precision="fp32"))
    try:
        assert torch.backends.cuda.matmul.allow_tf32 is True
    finally:
        torch.backends.cuda.matmul.allow_tf32 = False
