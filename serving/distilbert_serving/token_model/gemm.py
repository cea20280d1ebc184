"""The linear layers of the packed forward, through the fastest GEMM path of this CPU.

Almost all of a DistilBERT forward is six linear layers' matrix products, and which
library computes them fastest depends on the CPU and the precision:

    aten    ``F.linear``: MKL's sgemm for fp32 on the CPU, oneDNN's matmul (weights in
            their plain layout) for bf16, cuBLAS on a GPU. The reference path.
    onednn  ``torch.ops.mkldnn._linear_pointwise`` on a weight reordered once, at load,
            into oneDNN's blocked layout (``_reorder_linear_weight``), with the GELU or
            ReLU after the product and the residual addition before the layer norm
            fused into the same call (oneDNN post-ops): one pass over the output
            instead of two or three. CPU only.

Which path is fastest differs between CPUs (MKL's sgemm against oneDNN's kernels, with or
without AVX-512, AMX or bf16 support; figures in docs/BENCHMARKS.md), and no fixed rule gets
every machine right. So ``choose_path`` times the candidates at load on the model's own
feed-forward weights (interleaved, best of several rounds: a fraction of a second in all) and
keeps the fastest; a near-tie (3 %) goes to the first candidate in ``PATHS`` order, oneDNN,
whose fusions also save memory traffic. A forced path (``gemm`` other than ``"auto"``) skips the timing. On a GPU only aten runs.

A third path changes the arithmetic, so it is never chosen by timing, only by precision int8:

    int8    ``torch._int_mm`` (int8 × int8 → int32 products) on each weight quantized
            once, at load, to int8 per output row (symmetric: scale = the row's largest
            magnitude ÷ 127), and on the input quantized per row (per token) at each call,
            then rescaled to fp32. Per token, not per tensor as ``quantized.linear_dynamic``
            and ONNX Runtime's dynamic quantization do: with one scale for the whole input,
            a text's answer moved with the texts batched beside it (on real weights, 6 of 1,150
            top labels and logits by up to 2.9 between a text alone and in a batch: ``make
            precision-report``); with a scale per token none moved. It costs speed: the extra element-wise passes over the
            activations, which fbgemm fuses per tensor (docs/BENCHMARKS.md has both).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

PATHS = ("onednn", "aten")
CHOICES = ("auto", *PATHS)
INT8 = "int8"

# The activation of the feed-forward network, by its transformers name → oneDNN post-op.
_ONEDNN_ACTIVATIONS = {"gelu": ("gelu", "none"), "relu": ("relu", "")}


class GemmPathUnavailable(ValueError):
    """A forced GEMM path this device or precision cannot run."""


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` [rows, n] as int8, each row on its own symmetric scale, and those scales [rows, 1]."""
    scales = x.abs().amax(dim=1, keepdim=True).clamp_min_(1e-12).div_(127)
    return torch.div(x, scales).round_().to(torch.int8), scales  # rounded in place: one temporary fewer


def int8_linear(x: torch.Tensor, weight_t: torch.Tensor, weight_scales: torch.Tensor, bias: torch.Tensor | None):
    """``x · Wᵀ + b`` in int8: ``weight_t`` is Wᵀ quantized per output (``[in, out]``, int8)."""
    quantized, scales = quantize_rows(x)
    y = torch._int_mm(quantized, weight_t).float().mul_(scales)
    # The element-wise passes over the [rows, out] output are most of int8's cost beside the GEMM itself:
    # the weight scale and the bias in one pass, in place (the same values as y * ws + b in two).
    return y.mul_(weight_scales) if bias is None else torch.addcmul(bias, y, weight_scales, out=y)


def available_paths(device: torch.device, dtype: torch.dtype) -> tuple[str, ...]:
    """The GEMM paths that can run on ``device`` in ``dtype``, in order of preference."""
    if device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return ("aten",)
    supported = {
        torch.float32: True,
        torch.bfloat16: torch.ops.mkldnn._is_mkldnn_bf16_supported(),
        torch.float16: torch.ops.mkldnn._is_mkldnn_fp16_supported(),
    }
    return PATHS if supported.get(dtype, False) else ("aten",)


class Linear:
    """One linear layer's weight, held in the layout of one GEMM path.

    ``linear(x, activation, residual)`` computes ``activation(x · Wᵀ + b) + residual``
    (either part optional; both at once are not needed by the model and not offered).
    ``activation`` names the model's activation (``"gelu"``, ``"relu"``, …); one that
    oneDNN cannot fuse runs after the product as ``fallback``.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, path: str, rows_hint: int = 256):
        if path not in (*PATHS, INT8):
            raise ValueError(f"GEMM path must be one of {', '.join((*PATHS, INT8))}; got {path!r}")
        self.path = path
        self.out_features, self.in_features = weight.shape
        self.bias = None if bias is None else bias.detach()
        if path == INT8:
            quantized, scales = quantize_rows(weight.detach().float())
            self.weight, self.weight_scales = quantized.t().contiguous(), scales.view(-1)
        elif path == "onednn":
            # The blocked layout depends on the row count only as a hint; any row count works.
            self.weight = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), rows_hint)
        else:
            self.weight = weight.detach()

    def __call__(
        self,
        x: torch.Tensor,
        activation: str | None = None,
        residual: torch.Tensor | None = None,
        fallback: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        if activation is not None and residual is not None:
            raise ValueError("Linear fuses an activation or a residual, not both")
        if self.path != "onednn":
            if self.path == INT8:
                y = int8_linear(x, self.weight, self.weight_scales, self.bias)
            else:
                y = F.linear(x, self.weight, self.bias)
            if activation is not None:
                y = _activation(activation, fallback)(y)
            return y if residual is None else y.add_(residual)
        if residual is not None:
            return torch.ops.mkldnn._linear_pointwise.binary(x, residual, self.weight, self.bias, "add")
        if activation is None:
            return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")
        if activation in _ONEDNN_ACTIVATIONS:
            attr, algorithm = _ONEDNN_ACTIVATIONS[activation]
            return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, attr, [], algorithm)
        y = torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")
        return _activation(activation, fallback)(y)


def _activation(name: str, fallback: Callable[[torch.Tensor], torch.Tensor] | None):
    if name == "gelu":
        return F.gelu
    if name == "relu":
        return torch.relu
    if fallback is None:
        raise ValueError(f"activation {name!r} needs a fallback callable")
    return fallback


def feed_forward_seconds(
    path: str, lin1: tuple, lin2: tuple, activation: str, rows: int, fallback=None
) -> Callable[[], float]:
    """A timer of one feed-forward block (lin1 + activation, lin2 + residual) on ``path``."""
    first, second = Linear(*lin1, path=path, rows_hint=rows), Linear(*lin2, path=path, rows_hint=rows)
    x = torch.randn(rows, first.in_features, dtype=lin1[0].dtype)

    def run() -> float:
        started = time.perf_counter()
        second(first(x, activation, fallback=fallback), residual=x)
        return time.perf_counter() - started

    return run


def choose_path(
    requested: str,
    device: torch.device,
    dtype: torch.dtype,
    lin1: tuple[torch.Tensor, torch.Tensor | None],
    lin2: tuple[torch.Tensor, torch.Tensor | None],
    activation: str,
    fallback=None,
    rows: int = 256,
    rounds: int = 5,
) -> tuple[str, dict[str, float]]:
    """(the GEMM path to use, measured milliseconds per candidate; empty if not timed).

    ``requested`` is ``"auto"`` or one of ``PATHS``. With ``"auto"`` and more than one
    candidate, each candidate runs the model's own first feed-forward block (``lin1``,
    ``lin2``: weight and bias) on ``rows`` random rows, candidates alternating, for
    ``rounds`` rounds after a warm-up; the fastest best-of-rounds wins. A candidate within
    3 % of the fastest but earlier in ``PATHS`` is kept instead: timing noise should not
    flip the choice between machines that are really equal.
    """
    if requested == INT8:
        if device.type != "cpu":
            raise GemmPathUnavailable(f"GEMM path int8 runs on the CPU only, not on {device}")
        return INT8, {}
    if requested not in CHOICES:
        raise ValueError(f"gemm must be one of {', '.join((*CHOICES, INT8))}; got {requested!r}")
    candidates = available_paths(device, dtype)
    if requested != "auto":
        if requested not in candidates:
            raise GemmPathUnavailable(
                f"GEMM path {requested!r} cannot run {dtype} on {device} "
                f"(available: {', '.join(candidates)}); use gemm 'auto'"
            )
        return requested, {}
    if len(candidates) == 1:
        return candidates[0], {}
    return _fastest(candidates, lin1, lin2, activation, fallback, rows, rounds)


@torch.inference_mode()
def _fastest(candidates: Sequence[str], lin1, lin2, activation, fallback, rows, rounds):
    timers = {p: feed_forward_seconds(p, lin1, lin2, activation, rows, fallback) for p in candidates}
    for timer in timers.values():  # warm-up: oneDNN builds its kernels for the shape on first use
        timer()
    best = {p: float("inf") for p in candidates}
    for _ in range(rounds):
        for path, timer in timers.items():
            best[path] = min(best[path], timer())
    fastest = min(best.values())
    chosen = next(p for p in candidates if best[p] <= 1.03 * fastest)
    return chosen, {p: round(t * 1e3, 2) for p, t in best.items()}
