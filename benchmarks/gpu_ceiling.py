"""The in-process ceiling on one GPU, and reduced-precision agreement: the model called directly.

    python benchmarks/gpu_ceiling.py measure --checkpoint DIR --texts texts.json --out ceiling.json
    python benchmarks/gpu_ceiling.py agreement --checkpoint .tools/gpu-realweights --out DIR

``measure`` (run by gpu_check.py on a random-weight full-size checkpoint): the dense bf16 matrix rate of
this GPU (the yardstick of gpu_check's 128-token target); per precision (bf16, fp32 with TF32 off, fp16),
sequences per second of transformers padded, the packed forward and its varlen attention (``best_rates``)
on the benchmark's real texts and on fixed 128-token batches; single-text latency, for bf16 with cuDNN
attention on and off (GPU instances turn it off: it plans every new shape); fp32 logits on the GPU against
transformers fp32 on the CPU. Reduced precisions are judged on real weights (``agreement``): random
weights' tiny logit margins make agreement say little.

``agreement`` (the optional second device call, on the folder ``gpu_bundle.py --real-weights`` writes):
the real-weights checkpoint in fp32 (TF32 off), bf16 and fp16 through the engine; argmax agreement with
fp32 (target ≥ 99.5 %) and with the CPU reference computed where the folder was built, max |Δlogit|,
held-out accuracy, and the fp32 margins of any flips.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

from ceiling import engine_logits, fastest, load_engine, passes, single_text_ms, transformers_logits

FIXED_LENGTH = 128
FIXED_SEQUENCES = 2048
FIXED_TOKENS = tuple(rows * FIXED_LENGTH for rows in (64, 256, 1024))  # batches of 64, 256 and 1,024 rows
PADDED_TOKENS = (4096, 16384, 65536)  # transformers: padded tokens per forward at most
PACKED_TOKENS = (8192, 32768, 131072)  # packed: real tokens per forward at most
REPEATS = 5
# bf16 first (the throughput targets), then fp32 (the correctness target), fp16 last.
PRECISIONS = ("bf16", "fp32", "fp16")


def strict_fp32() -> None:
    """fp32 means fp32: no TF32 in matrix products or convolutions (the 1e-4 target needs it)."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def dense_bf16_tflops(device, size: int = 8192, repeats: int = 10) -> float:
    """Random bf16 operands (never zeros: they run faster than real data), timed after three warm-ups."""
    import torch

    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e12


def best_rates(engine, rows: list[np.ndarray], device, sizes: dict[str, tuple[int, ...]]) -> dict:
    """seq/s of each strategy on ``rows`` at its fastest batch bound of ``sizes[strategy]``, and that bound."""
    result, ways, sync = {}, passes(engine, rows, device), partial(synchronize, device)
    ways["varlen"] = varlen(engine, ways["packed"])
    for way, run in ways.items():
        result[f"{way}_best"], result[f"{way}_tokens"] = fastest(run, len(rows), REPEATS, sizes[way], sync)
    return result


def varlen(engine, run):
    """``run`` with the engine's attention as one variable-length call per layer (forward_mode varlen)."""

    def with_varlen(*args):
        engine.packed.attention = "varlen"
        try:
            return run(*args)
        finally:
            engine.packed.attention = "chunks"

    return with_varlen


def cudnn_attention_cost(engine, rows: list[np.ndarray]) -> dict:
    """Single-text ms with cuDNN's attention allowed (lengths it has not planned yet, then again) and without,
    on an engine that has not used it yet."""
    import torch

    result = {}
    for name, enabled in (("cudnn_first_pass", True), ("cudnn_second_pass", True), ("without_cudnn", False)):
        torch.backends.cuda.enable_cudnn_sdp(enabled)
        result[name] = single_text_ms(engine, rows, samples=60)
    return result


def strict_engine(checkpoint: Path, precision: str, device):
    engine = load_engine(checkpoint, precision, device)
    strict_fp32()  # loading lets fp32 use TF32 on a GPU, as served instances do (token_model/device.py)
    return engine


def compare(logits: np.ndarray, reference: np.ndarray) -> dict:
    agree = logits.argmax(1) == reference.argmax(1)
    margins = np.diff(np.sort(reference, axis=1)[:, -2:]).ravel()  # top-1 − top-2 logit
    return {
        "max_abs_diff": float(np.abs(logits - reference).max()),
        "argmax_agreement": float(agree.mean()),
        "agree": int(agree.sum()),
        "count": len(agree),
        "reference_margins_of_flips": sorted(float(m) for m in margins[~agree]),
    }


def device_of(args) -> tuple:
    """(cuda:0, its name); ``--device cpu`` only to try the script on a machine without a GPU (tiny checkpoint)."""
    import torch

    strict_fp32()
    if args.device == "cpu":
        return torch.device("cpu"), "cpu"
    if not torch.cuda.is_available():
        raise SystemExit("CUDA not available: this measures a CUDA device (--device cpu only tries the script out)")
    return torch.device("cuda:0"), torch.cuda.get_device_name(0)


def measure(args) -> dict:
    import torch

    device, name = device_of(args)
    deadline = time.monotonic() + args.budget_s
    data = json.loads(args.texts.read_text())
    rows = [np.asarray(r, dtype=np.int64) for r in data["ids"]]
    lengths = np.array([len(r) for r in rows])
    result: dict = {
        "device": name,
        "torch": torch.__version__,
        "texts": {"source": data.get("source"), "count": len(rows), "tokens_mean": float(lengths.mean())},
        "precisions": {},
        "skipped": [],
    }
    size = 8192 if device.type == "cuda" else 512
    result["dense_bf16_tflops"] = dense_bf16_tflops(device, size)
    print(f"dense bf16 {size}³: {result['dense_bf16_tflops']:.1f} TFLOP/s", flush=True)

    fp32: dict[str, np.ndarray] = {}  # the GPU's fp32 logits, packed and transformers
    for precision in args.precisions:
        if time.monotonic() > deadline:
            result["skipped"].append(f"{precision}: out of time")
            continue
        engine = strict_engine(args.checkpoint, precision, device)
        fixed_ids = np.random.default_rng(0).integers(
            1000, engine.limits.vocab_size, (args.fixed_sequences, FIXED_LENGTH)
        )
        fixed_ids[:, 0], fixed_ids[:, -1] = 101, 102  # [CLS] ... [SEP]
        entry = {
            "texts": best_rates(engine, rows, device, {"transformers": PADDED_TOKENS, "packed": PACKED_TOKENS, "varlen": PACKED_TOKENS}),
            "fixed128": best_rates(engine, list(fixed_ids), device, dict.fromkeys(("transformers", "packed", "varlen"), FIXED_TOKENS)),
        }  # fmt: skip
        if precision == "bf16" and device.type == "cuda":
            entry["sdpa_cudnn"] = cudnn_attention_cost(engine, rows)
        entry["single_text_ms"] = single_text_ms(engine, rows, samples=60)
        entry["single_text_ms_varlen"] = varlen(engine, single_text_ms)(engine, rows, 60)
        if precision == "fp32":
            fp32 = {
                "packed": engine_logits(engine, rows),
                "transformers": transformers_logits(engine.model, rows, device, 16384),
            }
        result["precisions"][precision] = entry
        print(f"{precision}: {json.dumps(entry)}", flush=True)
        del engine
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if fp32:
        from transformers import DistilBertForSequenceClassification

        cpu_model = DistilBertForSequenceClassification.from_pretrained(args.checkpoint, dtype=torch.float32)
        cpu = transformers_logits(cpu_model.eval(), rows)
        result["fp32_gpu_vs_cpu_transformers"] = {way: compare(logits, cpu) for way, logits in fp32.items()}
    return result


def agreement(args) -> dict:
    import torch

    device, name = device_of(args)
    inputs = json.loads((args.checkpoint / "inputs.json").read_text())
    rows = [np.asarray(r, dtype=np.int64) for r in inputs["ids"]]
    labels = np.array(inputs["labels"])
    held_out = np.arange(inputs["held_out_from"], len(rows))
    cpu = np.asarray(inputs["reference_cpu_fp32"], dtype=np.float32)
    precisions = ("fp32", "bf16", "fp16") if device.type == "cuda" else ("fp32", "bf16")
    logits = {p: engine_logits(strict_engine(args.checkpoint, p, device), rows) for p in precisions}
    reduced = precisions[1:]
    accuracy = {p: float((logits[p][held_out].argmax(1) == labels[held_out]).mean()) for p in precisions}
    return {
        "device": name,
        "torch": torch.__version__,
        "texts": {"source": inputs["source"], "count": len(rows), "topics": inputs["topics"]},
        "fp32_gpu_vs_cpu": compare(logits["fp32"], cpu),
        "vs_gpu_fp32": {p: compare(logits[p], logits["fp32"]) for p in reduced},
        "vs_cpu_fp32": {p: compare(logits[p], cpu) for p in reduced},
        "held_out_accuracy": {**accuracy, "cpu_fp32": float((cpu[held_out].argmax(1) == labels[held_out]).mean())},
    }


def agreement_table(result: dict) -> str:
    diff = result["fp32_gpu_vs_cpu"]["max_abs_diff"]
    lines = [
        f"Real weights (all-MiniLM-L6-v2 encoder, trained head), {result['texts']['count']} texts, {result['device']}:",
        "| figure | value | target | |",
        "| --- | --- | --- | --- |",
        f"| fp32 on {result['device']} (TF32 off) vs CPU transformers: max abs Δlogit | {diff:.2e} | ≤ 1e-4 "
        f"| {'✓' if diff <= 1e-4 else '✗'} |",
    ]
    for p, c in result["vs_gpu_fp32"].items():
        ok = c["argmax_agreement"] >= 0.995
        lines.append(
            f"| {p} argmax agreement with fp32 | {c['agree']}/{c['count']} ({100 * c['argmax_agreement']:.2f} %), "
            f"max abs Δ {c['max_abs_diff']:.2e} | ≥ 99.5 % | {'✓' if ok else '✗'} |"
        )
    accuracy = ", ".join(f"{p} {a:.3f}" for p, a in result["held_out_accuracy"].items())
    return "\n".join([*lines, f"| held-out accuracy | {accuracy} | | |"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    steps = parser.add_subparsers(dest="step", required=True)
    m = steps.add_parser("measure", help="throughput ceilings and random-weight agreement")
    m.add_argument("--checkpoint", type=Path, required=True)
    m.add_argument("--texts", type=Path, required=True, help="JSON with 'ids' (gpu_bundle.py's data/texts.json)")
    m.add_argument("--out", type=Path, required=True, help="JSON file")
    m.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    m.add_argument("--budget-s", type=float, default=120, help="start no new precision after this")
    m.add_argument("--fixed-sequences", type=int, default=FIXED_SEQUENCES, help="128-token sequences timed")
    a = steps.add_parser("agreement", help="bf16/fp16 against fp32 on the real-weights folder")
    a.add_argument("--checkpoint", type=Path, required=True, help="the folder gpu_bundle.py --real-weights writes")
    a.add_argument("--out", type=Path, required=True, help="folder")
    for sub in (m, a):
        sub.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="cpu: only to try the script out")
    args = parser.parse_args(argv)
    if args.step == "measure":
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(measure(args), indent=1))
        return 0
    result = agreement(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "agreement.json").write_text(json.dumps(result, indent=1))
    table = agreement_table(result)
    (args.out / "agreement.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
