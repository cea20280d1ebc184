"""What a CPU user would run instead of Triton: ONNX Runtime and OpenVINO, in-process, at their best.

    python benchmarks/alternatives.py --texts 200 --precisions fp32 bf16     # prints one line per runtime
    python benchmarks/alternatives.py --texts 200 --precisions fp32 int8

The checkpoint is exported to ONNX here (``torch.onnx.export``, TorchScript exporter, opset 17,
batch and sequence axes dynamic, eager attention so that ONNX Runtime's BERT fusions find the
attention pattern) and each runtime is given the texts the served model gets, with the same thread
count, at the in-process ceiling's best case: the whole set sorted by length, cut into padded
batches of at most N tokens (``ceiling.padded_batches``), timed at each N of ``ceiling.BATCH_TOKENS``
and counted at its fastest, as the ceiling is.

    onnxruntime          fp32  CPUExecutionProvider, ORT_ENABLE_ALL, intra-op threads = threads
    onnxruntime fused    fp32  the same graph after onnxruntime.transformers' BERT fusions
                               (Attention, SkipLayerNormalization, BiasGelu, EmbedLayerNormalization)
    onnxruntime          int8  the fp32 file through ``onnxruntime.quantization.quantize_dynamic``: QInt8
                               weights, one scale per channel; activations quantized to uint8 per call
                               (DynamicQuantizeLinear → MatMulInteger); then as the fp32 row (ORT_ENABLE_ALL)
    onnxruntime fused    int8  the fused fp32 graph through the same quantization (QAttention,
                               QEmbedLayerNormalization, MatMulInteger)
    openvino             fp32  INFERENCE_PRECISION_HINT f32, PERFORMANCE_HINT LATENCY, INFERENCE_NUM_THREADS = threads
    openvino             bf16  INFERENCE_PRECISION_HINT bf16; a CPU without bf16 instructions runs f32,
                               and the row says what ran (``executed``)

ONNX Runtime has no bf16 path for these operators on CPU, so it has fp32 and int8 rows only. OpenVINO
has no int8 row: its int8 path takes a model quantized by NNCF (``nncf.quantize`` or
``nncf.compress_weights``), which is not installed here, so OpenVINO int8 is not measured. Given ORT's
dynamically quantized file instead, OpenVINO ran it slower than its own fp32 row (19.5 against 23.3 seq/s,
2 cores, 60 texts), reporting f32 inference: no int8 alternative either.

Every run's logits are compared with ``transformers`` fp32 on every text (max |Δlogit|; the share of
texts whose top label agrees is reported beside it). A runtime off by more than its tolerance (fp32
1e-3, bf16 5e-2, times the largest reference logit when that is above 1; int8 0.25 times the largest
reference logit, see ``TOLERANCE``) is reported but never counted as the best alternative: a broken
export cannot produce a fast wrong number. Single-text latency is the ceiling's: one text per call,
median over texts spread evenly through the set (after one untimed pass over them, so each shape has
been seen once).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import project_paths
from ceiling import BATCH_TOKENS, fastest, padded_batches
from corpus import english_texts

INPUTS = ("input_ids", "attention_mask")
# Allowed max |Δlogit| against transformers fp32, times the largest reference logit |ℓ|max. fp32 and bf16
# round each operation: their error is absolute-ish, so |ℓ|max only widens the bound when above 1. int8 is
# lossy by design (every linear layer's weights and inputs rounded to 8 bits of their range): its error is
# relative to the logits' size, so its bound is 0.25 × |ℓ|max with no floor at 1. With the floor, anything
# would pass on small logits: the random-weights checkpoint's logits are ~0.2 at most, where a bound of 0.25
# passes an all-zero output; 0.25 × |ℓ|max (~0.05 there) fails it, a sign flip or a shuffled row, while the
# int8 runs measured were off by ~0.01 (the served engine; ORT int8, per-channel weights) to ~0.02 (ORT
# int8, per-tensor weights), every top label the same. A trained checkpoint (|ℓ|max ~5) gets ~1.2: loose on
# purpose, a check for a broken export; what int8 changes in the answers is read in the agreement column.
TOLERANCE = {"fp32": 1e-3, "bf16": 5e-2, "int8": 0.25}
RELATIVE_TOLERANCE = {"int8"}  # bound = TOLERANCE × |ℓ|max, without the floor at 1
OPENVINO_PRECISION = {"fp32": "f32", "bf16": "bf16"}

# One batch: (row indices into the text set, ids [rows, longest], mask [rows, longest]).
Batch = tuple[np.ndarray, np.ndarray, np.ndarray]
# A runtime as the measurement sees it: ids and mask in, logits [rows, labels] out.
Forward = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Alternative:
    runtime: str  # onnxruntime | onnxruntime fused | openvino
    precision: str  # what was asked for: fp32 | bf16 | int8
    executed: str  # what the runtime reports it ran
    threads: int
    seq_s: float  # whole set, sorted, padded batches of ≤ batch_tokens tokens: its fastest of ceiling.BATCH_TOKENS
    single_text_ms: float
    max_abs_diff: float  # max |Δlogit| against transformers fp32, over every text
    agreement: float  # share of texts whose top label is transformers fp32's
    tolerance: float
    note: str = ""
    batch_tokens: int = 0

    @property
    def correct(self) -> bool:
        return self.max_abs_diff <= self.tolerance

    @property
    def name(self) -> str:
        return f"{self.runtime} {self.precision}"


def load_model(checkpoint: Path):
    from transformers import AutoModelForSequenceClassification

    # Eager attention: the graph ONNX Runtime's BERT fusions recognise (SDPA exports leave attention unfused).
    return AutoModelForSequenceClassification.from_pretrained(checkpoint, attn_implementation="eager").eval()


def export_onnx(model, path: Path) -> Path:
    """The model as ONNX with dynamic batch and sequence axes (TorchScript exporter, opset 17)."""
    import torch

    ids = torch.full((2, 8), 1000, dtype=torch.int64)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0  # a padded row, so the trace keeps the mask's path
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}}
    with warnings.catch_warnings():
        # The tracer warns about Python conditions on shapes; the logit check below is what guards the export.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (ids, mask),
            str(path),
            input_names=list(INPUTS),
            output_names=["logits"],
            dynamic_axes={**axes, "logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
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


def quantize_int8(source: Path, target: Path) -> tuple[Path, str]:
    """``source`` with int8 dynamic quantization (ONNX Runtime's); returns the file and its quantized operators.

    QInt8 weights with one scale per output channel (symmetric, as the served engine's int8), not one
    per tensor: on 60 texts, 2 cores, the two ran as fast as each other (interleaved, best of 7: 67.6 and
    67.0 seq/s unfused, 62.4 and 63.3 fused; single text 5-6 ms both), and per channel was off by half as
    much (max |Δlogit| 1.2e-2 against 1.9e-2, mean 3e-3 against 6e-3; every top label as fp32's in both).
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # "consider to run pre-processing": ORT_ENABLE_ALL optimizes at load
    try:
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=QuantType.QInt8,
            per_channel=True,
            # The fused graph's contrib operators (Attention, ...) defeat shape inference: their outputs are float.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        logging.disable(previous)
    graph = onnx.load(str(target), load_external_data=False).graph
    counts: dict[str, int] = {}
    for node in graph.node:
        if node.op_type.startswith("Q") or node.op_type.endswith("Integer"):
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return target, "QInt8 weights per channel: " + ", ".join(f"{name} {count}" for name, count in counts.items())


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
    compiled = core.compile_model(
        core.read_model(str(path)),
        "CPU",
        {
            "INFERENCE_PRECISION_HINT": OPENVINO_PRECISION[precision],
            "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": "LATENCY",
        },
    )
    request = compiled.create_infer_request()
    ran = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()  # f32 | bf16 | f16

    def forward(ids, mask):
        request.infer({"input_ids": ids, "attention_mask": mask})
        return request.get_output_tensor(0).data.copy()

    return forward, {"f32": "fp32", "f16": "fp16"}.get(ran, ran)


def reference_logits(model, batches: list[Batch], count: int) -> np.ndarray:
    """transformers fp32 on the same batches: what every runtime must answer."""
    import torch

    logits = np.zeros((count, model.config.num_labels), dtype=np.float32)
    with torch.inference_mode():
        for rows, ids, mask in batches:
            logits[rows] = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits.numpy()
    return logits


def measure(
    forward: Forward,
    batch_sets: dict[int, list[Batch]],
    singles: list[np.ndarray],
    reference: np.ndarray,
    repeats: int,
) -> tuple[float, int, float, float, float]:
    """(sequences/s over the sorted set at the fastest batch size, that size in tokens, median single-text ms,
    max |Δlogit| against ``reference``, share of texts whose top label is ``reference``'s).

    ``batch_sets``: the set cut into padded batches, by tokens per batch (``ceiling.BATCH_TOKENS``)."""
    logits = np.zeros_like(reference)

    def run(tokens: int) -> None:  # every pass keeps its answers: they are checked below
        for rows, ids, mask in batch_sets[tokens]:
            logits[rows] = forward(ids, mask)

    seq_s, tokens = fastest(run, len(reference), repeats)
    for row in singles:  # every shape once before timing, as a server that has warmed up
        forward(row, np.ones_like(row))
    latencies = []
    for row in singles:
        started = time.perf_counter()
        forward(row, np.ones_like(row))
        latencies.append((time.perf_counter() - started) * 1e3)
    max_abs_diff = float(np.abs(logits - reference).max())
    agreement = float((logits.argmax(axis=1) == reference.argmax(axis=1)).mean())
    return seq_s, tokens, statistics.median(latencies), max_abs_diff, agreement


def measure_alternatives(
    checkpoint: Path,
    ids: list[list[int]],
    threads: int,
    precisions: tuple[str, ...] = ("fp32", "bf16"),
    repeats: int = 2,
    latency_texts: int = 120,
    workdir: Path | None = None,
    log: Callable[[str], None] = print,
) -> list[Alternative]:
    """Every alternative runtime at ``precisions`` on ``ids``, checked against transformers fp32."""
    import torch

    torch.set_num_threads(threads)
    batch_sets = {tokens: padded_batches(ids, tokens) for tokens in BATCH_TOKENS}
    singles = [np.asarray([row], dtype=np.int64) for row in ids[:: max(1, len(ids) // latency_texts)]]
    model = load_model(checkpoint)
    reference = reference_logits(model, batch_sets[BATCH_TOKENS[0]], len(ids))
    largest = float(np.abs(reference).max())

    def tolerance(precision: str) -> float:
        return TOLERANCE[precision] * (largest if precision in RELATIVE_TOLERANCE else max(1.0, largest))

    with tempfile.TemporaryDirectory() as tmp:
        folder = workdir or Path(tmp)
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
                for runtime, source, target in (
                    ("onnxruntime", onnx_path, "model-int8.onnx"),
                    ("onnxruntime fused", fused, "model-fused-int8.onnx"),
                ):
                    started = time.perf_counter()
                    quantized, operators = quantize_int8(source, folder / target)
                    log(f"quantized {source.name} to int8 in {time.perf_counter() - started:.0f} s")
                    forward = onnxruntime_forward(quantized, threads)
                    yield runtime, "int8", "int8", forward, f"{operators}; ORT_ENABLE_ALL"
            for precision in (p for p in precisions if p in OPENVINO_PRECISION):  # int8 needs NNCF: see above
                forward, executed = openvino_forward(onnx_path, precision, threads)
                yield "openvino", precision, executed, forward, "LATENCY hint"

        results = []
        for runtime, precision, executed, forward, note in candidates():
            seq_s, tokens, single_ms, diff, agreement = measure(forward, batch_sets, singles, reference, repeats)
            result = Alternative(
                runtime,
                precision,
                executed,
                threads,
                seq_s,
                single_ms,
                diff,
                agreement,
                tolerance(precision),
                note,
                batch_tokens=tokens,
            )
            verdict = "" if result.correct else f"  WRONG: max |Δlogit| above {result.tolerance:.1e}, not counted"
            log(
                f"{result.name} (ran {executed}): {seq_s:.1f} seq/s (batches of ≤ {tokens} tokens), single text {single_ms:.1f} ms, "
                f"max |Δlogit| {diff:.1e} (bound {result.tolerance:.1e}), top label as fp32 on "
                f"{100 * agreement:.1f} % ({note}){verdict}"
            )
            results.append(result)
    return results


def best_throughput(alternatives: list[Alternative], precision: str) -> Alternative | None:
    """The fastest alternative at ``precision`` whose logits passed the check."""
    candidates = [a for a in alternatives if a.precision == precision and a.correct]
    return max(candidates, key=lambda a: a.seq_s, default=None)


def best_latency(alternatives: list[Alternative], precision: str) -> Alternative | None:
    """The alternative at ``precision`` with the lowest single-text latency whose logits passed the check."""
    candidates = [a for a in alternatives if a.precision == precision and a.correct]
    return min(candidates, key=lambda a: a.single_text_ms, default=None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=project_paths.PROJECT / "checkpoints" / "full-single")
    parser.add_argument("--texts", type=int, default=600)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=list(TOLERANCE))
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)

    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(args.checkpoint)(english_texts(args.texts), truncation=True)["input_ids"]
    measure_alternatives(args.checkpoint, ids, args.threads, tuple(args.precisions))


if __name__ == "__main__":
    main()
