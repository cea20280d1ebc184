"""The in-process ceiling on one GPU, and reduced-precision agreement: the model called directly.

    python benchmarks/gpu_ceiling.py measure --checkpoint DIR --texts texts.json --out ceiling.json
    python benchmarks/gpu_ceiling.py agreement --checkpoint .tools/gpu-realweights --out DIR

``measure`` (run by benchmarks/gpu_check.py on a random-weight full-size checkpoint):
  * the dense bf16 matrix rate of this GPU (8192³ products, random data): the yardstick of the
    128-token target (40 % of it, at ~85 MFLOP per token in DistilBERT's linear layers);
  * per precision (bf16, fp16, fp32 with TF32 off), sequences per second of
      transformers  ``DistilBertForSequenceClassification`` on padded batches, the set sorted by length
                    and cut into batches of at most N padded tokens (the best of a few N)
      packed        the served engine's packed forward (clf_serving/packed.py), the set sorted by length
                    in groups of at most N real tokens (the best of a few N)
    on the benchmark's real texts (mixed lengths) and on fixed 128-token batches of several sizes,
    each timed end to end (host-side batching included, synchronised) as the median of repeated passes;
  * single-text latency through the engine (the yardstick for p50 at concurrency 1);
  * fp32 logits on the GPU (TF32 off) against transformers fp32 on the CPU, and bf16/fp16 argmax
    agreement with fp32 — on random weights, whose tiny logit margins make agreement say little.

``agreement`` (the optional second device call, on the folder ``benchmarks/gpu_bundle.py --real-weights``
writes): the real-weights checkpoint (MiniLM encoder, head trained on a real task) in fp32 (TF32 off),
bf16 and fp16 through the engine; argmax agreement with fp32 (target ≥ 99.5 %) and with the CPU
reference computed where the folder was built, max |Δlogit|, held-out accuracy, and the fp32 margins of
any flips.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import project_paths  # noqa: F401  (build/, docker/ and the models' packages by name)
from ceiling import padded_batches

FLOP_PER_TOKEN = 85e6  # DistilBERT's linear layers: 6 × (4·768² + 2·768·3072) multiply-adds × 2
DENSE_FRACTION_TARGET = 0.4
FIXED_LENGTH = 128
FIXED_SEQUENCES = 2048
FIXED_BATCHES = (64, 256, 1024)
PADDED_TOKENS = (4096, 16384, 65536)  # transformers: padded tokens per forward at most
PACKED_TOKENS = (8192, 32768, 131072)  # packed: real tokens per forward at most
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


def timed(run, sequences: int, device, min_repeats: int = 5, min_seconds: float = 0.5) -> float:
    """Sequences per second: the median of repeated synchronised passes, after two warm-up passes."""
    for _ in range(2):
        run()
    synchronize(device)
    times: list[float] = []
    began = time.perf_counter()
    while len(times) < min_repeats or time.perf_counter() - began < min_seconds:
        started = time.perf_counter()
        run()
        synchronize(device)
        times.append(time.perf_counter() - started)
        if len(times) >= 200:
            break
    return sequences / statistics.median(times)


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


def transformers_logits(model, rows: list[np.ndarray], device, max_tokens: int = 16384) -> np.ndarray:
    import torch

    out = np.empty((len(rows), model.config.num_labels), dtype=np.float32)
    with torch.inference_mode():
        for batch, ids, mask in padded_batches(rows, max_tokens):
            logits = model(input_ids=torch.from_numpy(ids).to(device), attention_mask=torch.from_numpy(mask).to(device))
            out[batch] = logits.logits.float().cpu().numpy()
    return out


def packed_pass(engine, rows: list[np.ndarray], max_tokens: int) -> None:
    """The packed forward over ``rows`` in length-sorted groups of at most ``max_tokens`` real tokens."""
    from clf_serving.batching import token_budget_groups

    for group in token_budget_groups([len(r) for r in rows], max_tokens):
        engine.packed.logits([rows[i] for i in group], [None] * len(group))


def throughputs(engine, rows: list[np.ndarray], device) -> dict:
    """seq/s of transformers (padded) and packed on ``rows``, per batch bound, and the best of each."""
    import torch

    result: dict = {"transformers": {}, "packed": {}}

    for max_tokens in PADDED_TOKENS:

        def transformers_pass(max_tokens=max_tokens):
            with torch.inference_mode():
                for _, ids, mask in padded_batches(rows, max_tokens):
                    engine.model(
                        input_ids=torch.from_numpy(ids).to(device), attention_mask=torch.from_numpy(mask).to(device)
                    )

        result["transformers"][str(max_tokens)] = timed(transformers_pass, len(rows), device)

    for max_tokens in PACKED_TOKENS:
        run = lambda max_tokens=max_tokens: packed_pass(engine, rows, max_tokens)  # noqa: E731
        result["packed"][str(max_tokens)] = timed(run, len(rows), device)
    for way in ("transformers", "packed"):
        result[f"{way}_best"] = max(result[way].values())
    return result


def fixed_length_throughputs(engine, vocab_size: int, device, sequences: int = FIXED_SEQUENCES) -> dict:
    """seq/s on ``sequences`` random-token sequences of ``FIXED_LENGTH``, per rows per forward."""
    import torch

    rng = np.random.default_rng(0)
    ids = rng.integers(1000, vocab_size, size=(sequences, FIXED_LENGTH), dtype=np.int64)
    ids[:, 0], ids[:, -1] = 101, 102  # [CLS] ... [SEP]
    rows = list(ids)
    result: dict = {"transformers": {}, "packed": {}}
    for batch in FIXED_BATCHES:
        starts = range(0, sequences, batch)

        def transformers_pass(batch=batch, starts=starts):
            with torch.inference_mode():
                for s in starts:
                    chunk = torch.from_numpy(ids[s : s + batch]).to(device)
                    engine.model(input_ids=chunk, attention_mask=torch.ones_like(chunk))

        def packed_pass(batch=batch, starts=starts):
            for s in starts:
                engine.packed.logits(rows[s : s + batch], [None] * len(rows[s : s + batch]))

        result["transformers"][str(batch)] = timed(transformers_pass, sequences, device)
        result["packed"][str(batch)] = timed(packed_pass, sequences, device)
    for way in ("transformers", "packed"):
        result[f"{way}_best"] = max(result[way].values())
    return result


def single_text_ms(engine, rows: list[np.ndarray], samples: int = 60) -> float:
    from clf_serving.validation import Sequence

    sample = rows[:: max(1, len(rows) // samples)]
    for row in sample[:5]:
        engine.classify([Sequence(row, None)])
    latencies = []
    for row in sample:
        synchronize(engine.device)
        started = time.perf_counter()
        engine.classify([Sequence(row, None)])  # returns numpy: synchronised
        latencies.append((time.perf_counter() - started) * 1e3)
    return statistics.median(latencies)


def attention_overhead_sweep(engine, rows: list[np.ndarray], device, max_tokens: int = 32768) -> dict:
    """Packed seq/s on ``rows`` by the ``attention_overhead_tokens`` knob (the planner's cost of one
    attention chunk), default first. On a GPU each chunk costs kernel launches and Python in every
    layer, so a larger value (fewer, more padded chunks) may pay; this measures it, nothing sets it yet.
    """
    default, result = engine.packed.attention_overhead_tokens, {}
    for overhead in (default, 1024, 16384, 1 << 20):
        engine.packed.attention_overhead_tokens = overhead
        result[str(overhead)] = timed(lambda: packed_pass(engine, rows, max_tokens), len(rows), device)
    engine.packed.attention_overhead_tokens = default
    return result


def cudnn_attention_cost(engine, rows: list[np.ndarray]) -> dict:
    """Single-text ms with cuDNN's attention allowed (lengths it has not planned yet, then again) and without.

    clf_serving/device.py turns cuDNN attention off on GPUs: it plans each new shape, and a packed
    forward's shapes follow its texts' lengths. Run on an engine that has not yet used it.
    """
    import torch

    result = {}
    for name, enabled in (("cudnn_first_pass", True), ("cudnn_second_pass", True), ("without_cudnn", False)):
        torch.backends.cuda.enable_cudnn_sdp(enabled)
        result[name] = single_text_ms(engine, rows)
    return result


def engine_logits(engine, rows: list[np.ndarray]) -> np.ndarray:
    from clf_serving.validation import Sequence

    logits, _ = engine.classify([Sequence(row, None) for row in rows])
    return logits


def load_engine(checkpoint: Path, precision: str, device):
    from clf_serving.engine import ClassifierEngine
    from clf_serving.settings import ServingSettings

    engine = ClassifierEngine.load(checkpoint, device, ServingSettings(precision=precision))
    strict_fp32()  # loading lets fp32 use TF32 on a GPU, as served instances do (clf_serving/device.py)
    return engine


def compare(logits: np.ndarray, reference: np.ndarray) -> dict:
    agree = logits.argmax(1) == reference.argmax(1)
    top2 = np.sort(reference, axis=1)[:, -2:]
    margins = top2[:, 1] - top2[:, 0]
    return {
        "max_abs_diff": float(np.abs(logits - reference).max()),
        "argmax_agreement": float(agree.mean()),
        "agree": int(agree.sum()),
        "count": len(agree),
        "reference_margins_of_flips": sorted(float(m) for m in margins[~agree]),
    }


def device_of(args):
    """cuda:0; ``--device cpu`` only to try the script on a machine without a GPU (tiny checkpoint)."""
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("CUDA not available: this measures a CUDA device (--device cpu only tries the script out)")
    strict_fp32()
    return torch.device("cuda:0" if args.device == "cuda" else "cpu")


def measure(args) -> dict:
    import torch

    device = device_of(args)
    deadline = time.monotonic() + args.budget_s
    data = json.loads(args.texts.read_text())
    rows = [np.asarray(r, dtype=np.int64) for r in data["ids"]]
    lengths = np.array([len(r) for r in rows])
    result: dict = {
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "checkpoint": str(args.checkpoint),
        "texts": {
            "source": data.get("source"),
            "count": len(rows),
            "tokens_mean": float(lengths.mean()),
            "tokens_median": float(np.median(lengths)),
            "tokens_max": int(lengths.max()),
        },
        "tf32": {
            "matmul": torch.backends.cuda.matmul.allow_tf32,
            "cudnn": torch.backends.cudnn.allow_tf32,
        },
        "precisions": {},
        "skipped": [],
    }
    size = 8192 if device.type == "cuda" else 512
    result["dense_bf16_tflops"] = dense_bf16_tflops(device, size)
    print(f"dense bf16 {size}³: {result['dense_bf16_tflops']:.1f} TFLOP/s", flush=True)

    logits: dict[str, np.ndarray] = {}
    for precision in args.precisions:
        if time.monotonic() > deadline:
            result["skipped"].append(f"{precision}: out of time")
            continue
        engine = load_engine(args.checkpoint, precision, device)
        texts = throughputs(engine, rows, device)
        fixed = fixed_length_throughputs(engine, engine.limits.vocab_size, device, args.fixed_sequences)
        logits[precision] = engine_logits(engine, rows)
        entry = {"texts": texts, "fixed128": fixed, "single_text_ms": single_text_ms(engine, rows)}
        if precision == "bf16" and device.type == "cuda":
            entry["sdpa_cudnn"] = cudnn_attention_cost(engine, rows)
            print(f"bf16 single text ms, cuDNN attention vs not: {entry['sdpa_cudnn']}", flush=True)
            entry["attention_overhead_tokens"] = attention_overhead_sweep(engine, rows, device)
            print(f"bf16 packed seq/s by attention_overhead_tokens: {entry['attention_overhead_tokens']}", flush=True)
        if precision == "fp32":
            entry["transformers_logits"] = transformers_logits(engine.model, rows, device)
        result["precisions"][precision] = entry
        print(
            f"{precision}: texts transformers {texts['transformers_best']:.0f} seq/s, packed {texts['packed_best']:.0f}; "
            f"128 tokens transformers {fixed['transformers_best']:.0f}, packed {fixed['packed_best']:.0f}; "
            f"single text {entry['single_text_ms']:.2f} ms",
            flush=True,
        )
        del engine
        if device.type == "cuda":
            torch.cuda.empty_cache()

    if "fp32" in logits:
        from transformers import DistilBertForSequenceClassification

        cpu_model = DistilBertForSequenceClassification.from_pretrained(args.checkpoint, dtype=torch.float32).eval()
        cpu = transformers_logits(cpu_model, rows, torch.device("cpu"), max_tokens=4096)
        gpu_transformers = result["precisions"]["fp32"].pop("transformers_logits")
        result["fp32_gpu_vs_cpu_transformers"] = {
            "packed": compare(logits["fp32"], cpu),
            "transformers": compare(gpu_transformers, cpu),
        }
        result["agreement_random_weights"] = {p: compare(logits[p], logits["fp32"]) for p in logits if p != "fp32"}
    else:
        result["precisions"].get("fp32", {}).pop("transformers_logits", None)
    rate = result["dense_bf16_tflops"]
    result["targets"] = {
        "fixed128_packed_bf16_seq_s": DENSE_FRACTION_TARGET * rate * 1e12 / (FLOP_PER_TOKEN * FIXED_LENGTH),
        "flop_per_token": FLOP_PER_TOKEN,
    }
    return result


def agreement(args) -> dict:
    import torch

    device = device_of(args)
    inputs = json.loads((args.checkpoint / "inputs.json").read_text())
    rows = [np.asarray(r, dtype=np.int64) for r in inputs["ids"]]
    labels = np.array(inputs["labels"])
    held_out = np.arange(inputs["held_out_from"], len(rows))
    cpu = np.asarray(inputs["reference_cpu_fp32"], dtype=np.float32)
    precisions = ("fp32", "bf16", "fp16") if device.type == "cuda" else ("fp32", "bf16")
    logits = {p: engine_logits(load_engine(args.checkpoint, p, device), rows) for p in precisions}
    reduced = precisions[1:]
    result = {
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "texts": {"source": inputs["source"], "count": len(rows), "topics": inputs["topics"]},
        "fp32_gpu_vs_cpu": compare(logits["fp32"], cpu),
        "vs_gpu_fp32": {p: compare(logits[p], logits["fp32"]) for p in reduced},
        "vs_cpu_fp32": {p: compare(logits[p], cpu) for p in reduced},
        "held_out_accuracy": {p: float((logits[p][held_out].argmax(1) == labels[held_out]).mean()) for p in precisions},
    }
    result["held_out_accuracy"]["cpu_fp32"] = float((cpu[held_out].argmax(1) == labels[held_out]).mean())
    return result


def agreement_table(result: dict) -> str:
    lines = [
        f"Real weights (all-MiniLM-L6-v2 encoder, trained head), {result['texts']['count']} texts, {result['device']}:",
        "| figure | value | target | |",
        "| --- | --- | --- | --- |",
    ]
    diff = result["fp32_gpu_vs_cpu"]["max_abs_diff"]
    lines.append(
        f"| fp32 on {result['device']} (TF32 off) vs CPU transformers: max abs Δlogit | {diff:.2e} | ≤ 1e-4 "
        f"| {'✓' if diff <= 1e-4 else '✗'} |"
    )
    for p, c in result["vs_gpu_fp32"].items():
        ok = c["argmax_agreement"] >= 0.995
        lines.append(
            f"| {p} argmax agreement with fp32 | {c['agree']}/{c['count']} ({100 * c['argmax_agreement']:.2f} %), "
            f"max abs Δ {c['max_abs_diff']:.2e} | ≥ 99.5 % | {'✓' if ok else '✗'} |"
        )
    accuracy = ", ".join(f"{p} {a:.3f}" for p, a in result["held_out_accuracy"].items())
    lines.append(f"| held-out accuracy | {accuracy} | | |")
    return "\n".join(lines)


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
        result = measure(args)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
    else:
        result = agreement(args)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "agreement.json").write_text(json.dumps(result, indent=1))
        table = agreement_table(result)
        (args.out / "agreement.md").write_text(table + "\n")
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
