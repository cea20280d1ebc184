"""What a CPU user would run instead of Triton: ONNX Runtime and OpenVINO, in-process, at their best.

The checkpoint is exported to ONNX (``export_onnx``) and each runtime gets the texts the served model
gets, with the same thread count, at the in-process ceiling's best case (``ceiling.padded_batches`` at
each size of ``ceiling.BATCH_TOKENS``, counted at its fastest).

    onnxruntime          fp32  CPUExecutionProvider, ORT_ENABLE_ALL, intra-op threads = threads
    onnxruntime fused    fp32  the same graph after onnxruntime.transformers' BERT fusions
    onnxruntime          int8  the fp32 file through ``quantize_dynamic``: QInt8 weights, one scale per
                               channel, activations quantized per call (DynamicQuantizeLinear → MatMulInteger)
    onnxruntime fused    int8  the fused graph through the same quantization (QAttention, MatMulInteger)
    openvino             fp32  INFERENCE_PRECISION_HINT f32, PERFORMANCE_HINT LATENCY, INFERENCE_NUM_THREADS
    openvino             bf16  INFERENCE_PRECISION_HINT bf16; a CPU without bf16 runs f32 (``executed``)

ONNX Runtime has no bf16 path for these operators on CPU; OpenVINO's int8 needs NNCF (not installed).

Every run's logits are compared with ``transformers`` fp32 on every text (max |Δlogit|, and the share
of top labels that agree); one off by more than its tolerance (``TOLERANCE``) is reported but never
counted as the best alternative. Single-text latency is the ceiling's, after one untimed pass.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ceiling import BATCH_TOKENS, fastest, median_ms, padded_batches, transformers_logits

# Allowed max |Δlogit| against transformers fp32, times the largest reference logit |ℓ|max. fp32 and bf16
# round each operation, so |ℓ|max only widens their bound when above 1. int8's error is relative to the
# logits' size, so its bound has no floor at 1: with one, an all-zero output would pass on the small
# logits of random weights. Loose on purpose: a check for a broken export; what int8 changes in the
# answers is read in the agreement column.
TOLERANCE = {"fp32": 1e-3, "bf16": 5e-2, "int8": 0.25}
RELATIVE_TOLERANCE = {"int8"}  # bound = TOLERANCE × |ℓ|max, without the floor at 1
OPENVINO_PRECISION = {"fp32": "f32", "bf16": "bf16"}

# A runtime as the measurement sees it: ids and mask in, logits [rows, labels] out.
Forward = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Alternative:
    runtime: str  # onnxruntime | onnxruntime fused | openvino
    precision: str  # what was asked for: fp32 | bf16 | int8
    executed: str  # what the runtime reports it ran
    threads: int
    seq_s: float  # whole set, sorted, padded batches of ≤ batch_tokens tokens: its fastest of ceiling.BATCH_TOKENS
    batch_tokens: int
    single_text_ms: float
    max_abs_diff: float  # max |Δlogit| against transformers fp32, over every text
    agreement: float  # share of texts whose top label is transformers fp32's
    tolerance: float
    note: str = ""

    @property
    def correct(self) -> bool:
        return self.max_abs_diff <= self.tolerance

    @property
    def name(self) -> str:
        return f"{self.runtime} {self.precision}"


def export_onnx(model, path: Path) -> Path:
    """The model as ONNX with dynamic batch and sequence axes (TorchScript exporter, opset 17)."""
    import torch

    ids = torch.full((2, 8), 1000, dtype=torch.int64)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0  # a padded row, so the trace keeps the mask's path
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}}
    names = {"input_names": list(axes), "output_names": ["logits"], "dynamic_axes": {**axes, "logits": {0: "batch"}}}
    with warnings.catch_warnings():
        # The tracer warns about Python conditions on shapes; the logit check is what guards the export.
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (ids, mask), str(path), **names, opset_version=17, dynamo=False)
    return path


def fuse_for_bert(source: Path, target: Path, num_heads: int, hidden_size: int) -> tuple[Path, str]:
    """ONNX Runtime's offline BERT fusions; returns the fused file and which fusions applied."""
    from onnxruntime.transformers.optimizer import optimize_model

    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optimized = optimize_model(str(source), model_type="bert", num_heads=num_heads, hidden_size=hidden_size)
        optimized.save_model_to_file(str(target))
    fused = {name: count for name, count in optimized.get_fused_operator_statistics().items() if count}
    return target, ", ".join(f"{name} {count}" for name, count in fused.items()) or "no fusion applied"


def quantize_int8(source: Path, target: Path) -> Path:
    """``source`` with ONNX Runtime's int8 dynamic quantization: QInt8 weights per output channel, symmetric
    as the served engine's int8."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The fused graph's contrib operators (Attention, ...) defeat shape inference: their outputs are float.
    options = {"DefaultTensorType": onnx.TensorProto.FLOAT}
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # "consider to run pre-processing": ORT_ENABLE_ALL optimizes at load
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True, extra_options=options)
    finally:
        logging.disable(previous)
    return target


def onnxruntime_forward(path: Path, threads: int) -> Forward:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda ids, mask: session.run(["logits"], {"input_ids": ids, "attention_mask": mask})[0]


def openvino_forward(path: Path, precision: str, threads: int) -> tuple[Forward, str]:
    """An OpenVINO CPU request for the ONNX file, and the precision it reports it runs."""
    import openvino as ov

    core = ov.Core()
    hints = {"INFERENCE_PRECISION_HINT": OPENVINO_PRECISION[precision], "INFERENCE_NUM_THREADS": threads}
    compiled = core.compile_model(core.read_model(str(path)), "CPU", {**hints, "PERFORMANCE_HINT": "LATENCY"})
    request = compiled.create_infer_request()
    ran = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()  # f32 | bf16 | f16

    def forward(ids, mask):
        request.infer({"input_ids": ids, "attention_mask": mask})
        return request.get_output_tensor(0).data.copy()

    return forward, {"f32": "fp32", "f16": "fp16"}.get(ran, ran)


def measure(
    forward: Forward, batch_sets: dict[int, list], singles: list[np.ndarray], reference: np.ndarray, repeats: int
) -> dict:
    """``Alternative``'s measured fields: throughput at its fastest of ``batch_sets`` (the sorted set cut into
    padded batches, by tokens per batch), single-text latency, and its answers against ``reference``."""
    logits = np.zeros_like(reference)

    def run(tokens: int) -> None:  # every pass keeps its answers: they are checked below
        for rows, ids, mask in batch_sets[tokens]:
            logits[rows] = forward(ids, mask)

    seq_s, tokens = fastest(run, len(reference), repeats)
    return {
        "seq_s": seq_s,
        "batch_tokens": tokens,
        # Every shape once before timing, as a server that has warmed up.
        "single_text_ms": median_ms(lambda row: forward(row, np.ones_like(row)), singles, warmup=len(singles)),
        "max_abs_diff": float(np.abs(logits - reference).max()),
        "agreement": float((logits.argmax(axis=1) == reference.argmax(axis=1)).mean()),
    }


def measure_alternatives(
    checkpoint: Path,
    ids: list[list[int]],
    threads: int,
    precisions: tuple[str, ...] = ("fp32", "bf16"),
    repeats: int = 2,
    latency_texts: int = 120,
    log: Callable[[str], None] = print,
) -> list[Alternative]:
    """Every alternative runtime at ``precisions`` on ``ids``, checked against transformers fp32."""
    import torch
    from transformers import AutoModelForSequenceClassification

    torch.set_num_threads(threads)
    batch_sets = {tokens: padded_batches(ids, tokens) for tokens in BATCH_TOKENS}
    singles = [np.asarray([row], dtype=np.int64) for row in ids[:: max(1, len(ids) // latency_texts)]]
    # Eager attention: the graph ONNX Runtime's BERT fusions recognise (SDPA exports leave attention unfused).
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint, attn_implementation="eager").eval()
    reference = transformers_logits(model, ids)
    largest = float(np.abs(reference).max())
    tolerance = {p: TOLERANCE[p] * (largest if p in RELATIVE_TOLERANCE else max(1.0, largest)) for p in TOLERANCE}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        onnx_path = export_onnx(model, folder / "model.onnx")
        log(f"exported {onnx_path.name} in {time.perf_counter() - started:.0f} s")
        config = model.config
        del model

        # (runtime, precision, executed, forward, note), built lazily so only one runtime is alive at a time.
        def candidates():
            if "fp32" in precisions or "int8" in precisions:
                fused, applied = fuse_for_bert(onnx_path, folder / "model-fused.onnx", config.n_heads, config.dim)
            if "fp32" in precisions:
                yield "onnxruntime", "fp32", "fp32", onnxruntime_forward(onnx_path, threads), "ORT_ENABLE_ALL"
                yield "onnxruntime fused", "fp32", "fp32", onnxruntime_forward(fused, threads), applied
            if "int8" in precisions:
                for runtime, source in (("onnxruntime", onnx_path), ("onnxruntime fused", fused)):
                    forward = onnxruntime_forward(quantize_int8(source, source.with_suffix(".int8.onnx")), threads)
                    yield runtime, "int8", "int8", forward, "QInt8 weights per channel; ORT_ENABLE_ALL"
            for precision in (p for p in precisions if p in OPENVINO_PRECISION):  # int8 needs NNCF: see above
                forward, executed = openvino_forward(onnx_path, precision, threads)
                yield "openvino", precision, executed, forward, "LATENCY hint"

        results = []
        for runtime, precision, executed, forward, note in candidates():
            measured = measure(forward, batch_sets, singles, reference, repeats)
            result = Alternative(
                runtime, precision, executed, threads, tolerance=tolerance[precision], note=note, **measured
            )
            verdict = "" if result.correct else "  WRONG: over its tolerance, not counted"
            log(f"{result.name} (ran {executed}): {measured}, tolerance {result.tolerance:.1e} ({note}){verdict}")
            results.append(result)
    return results


def best_throughput(alternatives: list[Alternative], precision: str) -> Alternative | None:
    """The fastest alternative at ``precision`` whose logits passed the check."""
    return max((a for a in alternatives if a.precision == precision and a.correct), key=lambda a: a.seq_s, default=None)


def best_latency(alternatives: list[Alternative], precision: str) -> Alternative | None:
    """The alternative at ``precision`` with the lowest single-text latency whose logits passed the check."""
    candidates = [a for a in alternatives if a.precision == precision and a.correct]
    return min(candidates, key=lambda a: a.single_text_ms, default=None)
