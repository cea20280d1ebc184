"""The packed forward's GEMM paths on this CPU: GEMM rates and forward throughput, A/B interleaved.

    python benchmarks/gemm_paths.py                        # fp32 and bf16, 2 threads
    python benchmarks/gemm_paths.py --precisions fp32 --rounds 9 --threads 2
    python benchmarks/gemm_paths.py --clock cpu --threads 1     # on a machine shared with other work

Full-size DistilBERT (random weights, built in memory: the GEMM rates do not depend on them).

1. GFLOP/s of each GEMM path (``clf_serving/gemm.py``) on the model's own shapes — the fused
   Q/K/V projection, the output projection + residual, lin1 + GELU, lin2 + residual — at 256
   and 2048 rows.
2. sequences/s of the packed forward with each path forced, beside transformers' own forward
   (``DistilBertForSequenceClassification`` on padded batches of ≤ 4096 tokens), on a fixed
   batch of 64 × 128 tokens and on 600 corpus texts sorted by length (the packed forward in
   groups of ≤ 8192 tokens, as the engine forms them).

The machine may be shared: variants alternate within each round, so drift hits all of them
alike, and the tables give the median and, in brackets, the best round. On a machine loaded
by other work, ``--clock cpu --threads 1`` measures the process's CPU time instead of the wall
clock: it leaves out the time the scheduler gives to other processes (with 2 threads,
OpenMP's spinning while the other thread waits for a core still counts). The last line says
what ``gemm: auto`` picks here and what its load-time probe measured.
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import numpy as np
import torch

import project_paths  # noqa: F401  (build/, docker/ and the models' packages by name)
from checkpoints import build_model, build_tokenizer
from corpus import english_texts

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def interleaved(variants: dict, rounds: int, clock=time.perf_counter) -> dict[str, tuple[float, float]]:
    """(median, best) seconds per call of each variant; variants alternate within each round after a warm-up."""
    for run in variants.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, run in variants.items():
            started = clock()
            run()
            times[name].append(clock() - started)
    return {name: (statistics.median(t), min(t)) for name, t in times.items()}


def rate(amount: float, seconds: tuple[float, float]) -> str:
    """``amount`` per second at the median round, and at the best one in brackets."""
    return f"{amount / seconds[0]:.1f} ({amount / seconds[1]:.1f})"


@torch.inference_mode()
def gemm_rates(model, dtype: torch.dtype, paths: tuple[str, ...], rounds: int, clock) -> list[str]:
    from clf_serving.gemm import Linear

    block = model.distilbert.transformer.layer[0]
    attention, ffn = block.attention, block.ffn
    qkv_weight = torch.cat([attention.q_lin.weight, attention.k_lin.weight, attention.v_lin.weight])
    qkv_bias = torch.cat([attention.q_lin.bias, attention.k_lin.bias, attention.v_lin.bias])
    # name → (weight, bias, activation, with residual)
    shapes = {
        "qkv 768→2304": (qkv_weight, qkv_bias, None, False),
        "out 768→768 +res": (attention.out_lin.weight, attention.out_lin.bias, None, True),
        "lin1 768→3072 +gelu": (ffn.lin1.weight, ffn.lin1.bias, "gelu", False),
        "lin2 3072→768 +res": (ffn.lin2.weight, ffn.lin2.bias, None, True),
    }
    lines = [f"| GEMM ({dtype}) | rows | " + " | ".join(f"{p} GFLOP/s" for p in paths) + " |"]
    lines.append("| --- | --- |" + " --- |" * len(paths))
    for rows in (256, 2048):
        for name, (weight, bias, activation, residual) in shapes.items():
            x = torch.randn(rows, weight.shape[1], dtype=dtype)
            res = torch.randn(rows, weight.shape[0], dtype=dtype) if residual else None
            variants = {}
            for path in paths:
                linear = Linear(weight, bias, path, rows_hint=rows)
                variants[path] = partial(linear, x, activation, residual=res)
            seconds = interleaved(variants, rounds, clock)
            flops = 2 * rows * weight.shape[0] * weight.shape[1]
            lines.append(f"| {name} | {rows} | " + " | ".join(rate(flops / 1e9, seconds[p]) for p in paths) + " |")
    return lines


def forward_rates(model, tokenizer, paths: tuple[str, ...], rounds: int, texts: int, clock) -> list[str]:
    from clf_serving.batching import token_budget_groups
    from clf_serving.packed import PackedClassifier

    fixed = [np.random.default_rng(0).integers(1000, 20000, size=128) for _ in range(64)]
    corpus = [np.asarray(row, dtype=np.int64) for row in tokenizer(english_texts(texts), truncation=True)["input_ids"]]
    packed = {path: PackedClassifier(model, gemm=path) for path in paths}

    def packed_pass(classifier, rows):
        groups = token_budget_groups([len(r) for r in rows], 8192)
        return lambda: [classifier.logits([rows[i] for i in g], [None] * len(g)) for g in groups]

    def transformers_pass(rows, padded_tokens=4096):
        order = np.argsort([len(r) for r in rows], kind="stable")
        batches, start = [], 0
        while start < len(order):
            end = start + 1
            while end < len(order) and (end + 1 - start) * len(rows[order[end]]) <= padded_tokens:
                end += 1
            batch = [rows[i] for i in order[start:end]]
            ids = np.zeros((len(batch), len(batch[-1])), dtype=np.int64)
            mask = np.zeros_like(ids)
            for r, row in enumerate(batch):
                ids[r, : len(row)], mask[r, : len(row)] = row, 1
            batches.append((torch.from_numpy(ids), torch.from_numpy(mask)))
            start = end

        @torch.inference_mode()
        def run():
            for ids, mask in batches:
                model(input_ids=ids, attention_mask=mask)

        return run

    lines = ["| seq/s | " + " | ".join([*(f"packed, {p}" for p in paths), "transformers"]) + " |"]
    lines.append("| --- |" + " --- |" * (len(paths) + 1))
    for name, rows in ((f"{len(fixed)} × 128 tokens", fixed), (f"{len(corpus)} corpus texts, sorted", corpus)):
        variants = {p: packed_pass(packed[p], rows) for p in paths}
        variants["transformers"] = transformers_pass(rows)
        seconds = interleaved(variants, rounds, clock)
        lines.append(f"| {name} | " + " | ".join(rate(len(rows), seconds[v]) for v in variants) + " |")
    auto = PackedClassifier(model)
    lines.append(f"\ngemm auto here: {auto.gemm_choice}")
    return lines


def main(argv: list[str] | None = None) -> None:
    from clf_serving.gemm import available_paths

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=sorted(DTYPES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--texts", type=int, default=600)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    parser.add_argument("--skip-gemm", action="store_true", help="forward throughput only")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    tokenizer = build_tokenizer(max_length=512)
    for precision in args.precisions:
        dtype = DTYPES[precision]
        model = build_model("full", "single_label_classification", len(tokenizer)).to(dtype).eval()
        paths = available_paths(torch.device("cpu"), dtype)
        print(f"\n## {precision}, {args.threads} threads, {args.clock} clock, {args.rounds} rounds: median (best)\n")
        if not args.skip_gemm:
            print("\n".join(gemm_rates(model, dtype, paths, args.rounds, CLOCKS[args.clock])) + "\n", flush=True)
        print(
            "\n".join(forward_rates(model, tokenizer, paths, args.rounds, args.texts, CLOCKS[args.clock])), flush=True
        )


if __name__ == "__main__":
    main()
