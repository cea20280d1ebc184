"""Benchmark the served model against the in-process ceiling and a naive baseline, in one run; or one of
the measurements behind the defaults (docs/BENCHMARKS.md, "Why the defaults are what they are").

    python benchmarks/benchmark.py                        # fp32 and bf16, concurrency 1 4 16 64 + a request-rate run
    python benchmarks/benchmark.py --precisions bf16 --concurrency 16 64 --interval-ms 4000
    python benchmarks/benchmark.py --precisions fp32 int8                # int8 beside fp32 and ONNX Runtime int8
    python benchmarks/benchmark.py --precisions fp32 --concurrency 16 --naive-concurrency --text-concurrency \\
        --texts 100 --interval-ms 2000 --no-alternatives                     # a quick check that it all runs
    python benchmarks/benchmark.py MEASUREMENT            # one measurement behind a default (--help lists them)

On the full-size offline checkpoint and 600 real English texts (their length histogram is printed), per
precision: the in-process ceiling (ceiling.py) and what a CPU user would run instead (alternatives.py), then
one tritonserver with the served model, the raw-text endpoint in front of it and the naive baseline
(``NAIVE_PRECISION``) driven by perf_analyzer over gRPC, with the padding and attention waste the model
counted (docs/BENCHMARKS.md, "Method"). Writes bench-results/<timestamp>/{results.csv, alternatives.csv,
report.md, throughput.png}.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import platform
import re
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from unittest import mock

import numpy as np

from alternatives import Alternative, best_latency, best_throughput, measure_alternatives
from ceiling import BATCH_TOKENS, Ceiling, measure_ceiling
from distilbert_serving.checkpoints import write_checkpoint
from distilbert_serving.corpus import english_texts
from distilbert_serving.export import ServingConfig, TextModelConfig, write_model, write_text_model
from distilbert_serving.launch import LocalServer, options_on_free_ports
from distilbert_serving.load_test import serving_config
from distilbert_serving.token_model.cores import OPENMP_IDLE_SPIN
from perf_analyzer import model_counters, run_perf_analyzer
from perf_input import write_text_input_data, write_token_input_data

PROJECT = Path(__file__).resolve().parent.parent
CHECKPOINT = PROJECT / "checkpoints" / "full-single"


@dataclass(frozen=True)
class Row:
    precision: str
    strategy: str  # served | naive | text (the raw-text endpoint in front of served)
    load: str  # concurrency N | rate R/s
    throughput: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    padding_waste: float | None  # dense-layer tokens ÷ real tokens − 1
    attention_waste: float | None
    stability_percent: int  # perf_analyzer's --stability-percentage the windows met (twice --stability on a retry)


def shown_load(row: Row, stability: int) -> str:
    """The row's load, with the looser window tolerance it was measured at if perf_analyzer needed a retry."""
    return row.load if row.stability_percent == stability else f"{row.load} (windows ±{row.stability_percent} %)"


def machine() -> str:
    import torch

    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    cpu = m.group(1) if (m := re.search(r"model name\s*:\s*(.*)", info)) else "unknown CPU"
    flags = "".join(f", {f} {'yes' if f in info else 'no'}" for f in ("amx_bf16", "avx512_bf16")) if info else ""
    return f"{cpu} ({os.cpu_count()} cores{flags}), {platform.system()}, torch {torch.__version__}"


def histogram(lengths: np.ndarray) -> str:
    edges = [1, 9, 17, 33, 65, 129, 257, 513]
    counts, _ = np.histogram(lengths, bins=edges)
    width = 40 / max(counts)
    lines = [
        f"{len(lengths)} texts, tokens: mean {lengths.mean():.1f}, median {np.median(lengths):.0f}, "
        f"p90 {np.percentile(lengths, 90):.0f}, max {lengths.max()}"
    ]
    for low, high, count in zip(edges[:-1], edges[1:], counts, strict=True):
        lines.append(f"  {low:>3}–{high - 1:<3} {count:>4} {'#' * int(count * width)}")
    return "\n".join(lines)


PRECISIONS = ("fp32", "bf16", "int8")
# The naive baseline's precision where it is not the row's own: transformers has no int8 forward to serve
# naively, so naive_int8 is the fp32 tutorial model and "× naive" on an int8 row includes quantization's gain.
NAIVE_PRECISION = {"int8": "fp32"}


def run(args) -> Path:
    from transformers import AutoTokenizer

    texts = english_texts(args.texts)
    ids = AutoTokenizer.from_pretrained(checkpoint_of("full"))(texts, truncation=True)["input_ids"]
    lengths = np.array([len(row) for row in ids])
    print(histogram(lengths), flush=True)

    out = PROJECT / "bench-results" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True)
    input_data = write_token_input_data(ids, out / "input_data.json")
    text_data = write_text_input_data(texts, out / "text_input_data.json")

    ceilings: dict[str, Ceiling] = {}
    for precision in args.precisions:
        ceilings[precision] = measure_ceiling(CHECKPOINT, ids, precision, args.threads)
        print(f"ceiling {precision}: {ceilings[precision]}", flush=True)
    alternatives: list[Alternative] = []
    if args.alternatives:
        alternatives = measure_alternatives(
            CHECKPOINT, ids, args.threads, tuple(args.precisions), log=lambda line: print(f"alternative: {line}")
        )

    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        for precision in args.precisions:
            # The default export's instances and threads (cores ÷ instances each): what `make serve` runs.
            config = ServingConfig(model_name=f"served_{precision}", precision=precision, instance_kind="cpu")
            write_model(CHECKPOINT, Path(tmp), config)
            write_text_model(CHECKPOINT, Path(tmp), config, TextModelConfig(model_name=f"text_{precision}"))
            naive_precision = NAIVE_PRECISION.get(precision, precision)
            naive = dict(precision=naive_precision, instance_kind="cpu", forward_mode="padded", dynamic_batching=False)
            write_model(CHECKPOINT, Path(tmp), ServingConfig(model_name=f"naive_{precision}", **naive))
        server = LocalServer(options_on_free_ports(tmp))
        server.start(timeout_s=900)  # three models per precision, each of several instances, load on the same cores
        try:

            def measure(precision: str, strategy: str, concurrency=None, rate=None) -> None:
                model = f"{strategy}_{precision}"
                counted = f"served_{precision}" if strategy == "text" else model  # the text model's forwards run there
                before = model_counters(server.metrics_url, counted)
                load = f"concurrency {concurrency}" if concurrency else f"rate {rate:g}/s"
                data = text_data if strategy == "text" else input_data
                # No stable windows (shared cores are noisy): once more with twice the tolerance, which the
                # report shows beside the row, rather than a hole in the table; then keep the other rows.
                for stability in (args.stability, 2 * args.stability):
                    try:
                        result = run_perf_analyzer(
                            model, server.grpc_url, data, concurrency, rate, args.interval_ms, stability
                        )
                        break
                    except RuntimeError as error:
                        said = [line for line in str(error).splitlines() if line.strip()]  # perf_analyzer's last words
                        print(f"{model} at {load}, windows ±{stability} %: no result ({said[-1]})", flush=True)
                else:
                    return
                forwards = model_counters(server.metrics_url, counted, since=before)
                latencies = (result.p50_ms, result.p95_ms, result.p99_ms)
                real = forwards["real_tokens"]  # padding and attention waste: tokens counted ÷ real tokens − 1
                wastes = [forwards[name] / real - 1 if real else None for name in ("padded_tokens", "attention_tokens")]
                rows.append(Row(precision, strategy, load, result.throughput, *latencies, *wastes, stability))
                print(rows[-1], flush=True)

            loads = {"served": args.concurrency, "naive": args.naive_concurrency, "text": args.text_concurrency}
            for precision in args.precisions:
                for strategy, levels in loads.items():
                    for concurrency in levels:
                        measure(precision, strategy, concurrency=concurrency)
                # Open loop at 80 % of the closed-loop peak: latency when requests arrive on their own schedule.
                served = [r.throughput for r in rows if r.precision == precision and r.strategy == "served"]
                if served:
                    measure(precision, "served", rate=round(0.8 * max(served), 1))
        finally:
            server.stop()

    write_reports(out, rows, ceilings, alternatives, lengths, args)
    return out


def write_reports(
    out: Path, rows: list[Row], ceilings: dict[str, Ceiling], alternatives: list[Alternative], lengths, args
) -> None:
    extra = ["ceiling_seq_s", "x_ceiling", "best_alternative", "best_alternative_seq_s", "x_best_alternative"]
    with open(out / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*asdict(rows[0]).keys(), *extra])
        writer.writeheader()
        for row in rows:
            ceiling, best = ceilings[row.precision].seq_s, best_throughput(alternatives, row.precision)
            versus = (best.name, round(best.seq_s, 1), round(row.throughput / best.seq_s, 3)) if best else ("",) * 3
            values = (round(ceiling, 1), round(row.throughput / ceiling, 3), *versus)
            writer.writerow({**asdict(row), **dict(zip(extra, values, strict=True))})
    if alternatives:
        with open(out / "alternatives.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=[*asdict(alternatives[0]).keys(), "correct"])
            writer.writeheader()
            writer.writerows({**asdict(alternative), "correct": alternative.correct} for alternative in alternatives)

    throughput = {(r.precision, r.strategy, r.load): r.throughput for r in rows}
    lines = [
        "# Benchmark: served DistilBERT vs the in-process ceiling and a naive baseline",
        "",
        f"Machine: {machine()}. In-process threads: {args.threads}; served: the default export "
        f"(2 instances, sharing the cores among those computing). Command: `python benchmarks/benchmark.py "
        f"--precisions {' '.join(args.precisions)} --concurrency {' '.join(map(str, args.concurrency))}`.",
        f"Checkpoint: full-size DistilBERT (dim 768, 6 layers, 12 heads), random weights. "
        f"perf_analyzer over gRPC, one text per request, measurement window {args.interval_ms} ms.",
        "",
        "```text",
        histogram(lengths),
        "```",
        "",
        "| precision | in-process: transformers sorted (seq/s, batch tokens) | in-process: packed (seq/s, batch tokens) "
        "| ceiling | single text (ms) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for c in ceilings.values():
        # At int8 the transformers strategy is not timed: only the packed forward is int8 (ceiling.py).
        transformers = (
            "—" if c.transformers_seq_s is None else f"{c.transformers_seq_s:.1f} ({c.transformers_tokens:,})"
        )
        lines.append(
            f"| {c.precision} | {transformers} | {c.packed_seq_s:.1f} ({c.packed_tokens:,}) | {c.seq_s:.1f} | "
            f"{c.single_text_ms:.1f} |"
        )
    naive_in = [f"{p} in {NAIVE_PRECISION[p]}" for p in ceilings if p in NAIVE_PRECISION]
    lines += [
        "",
        "`served`: the token model as shipped (packed forward, dynamic batching); `naive`: one transformers "
        "forward per request, no dynamic batching"
        + (f" (at {', '.join(naive_in)}: transformers has no int8 forward to serve naively)" if naive_in else "")
        + "; `text`: the raw-text endpoint (server-side tokenization, "
        "BLS into `served`). Padding waste: tokens through the dense layers ÷ real tokens − 1; attention waste: "
        "query positions computed in attention ÷ real tokens − 1.",
        "",
        "| precision | strategy | load | seq/s | × ceiling | × naive | × token endpoint | p50 ms | p95 ms | p99 ms "
        "| padding waste | attention waste |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]

    def ratio(value, base):
        return f"{value / base:.2f}" if value and base else ""

    def percent(value):
        return "" if value is None else f"{100 * value:.1f} %"

    for r in rows:
        naive = throughput.get((r.precision, "naive", r.load)) if r.strategy == "served" else None
        token = throughput.get((r.precision, "served", r.load)) if r.strategy == "text" else None
        lines.append(
            f"| {r.precision} | {r.strategy} | {shown_load(r, args.stability)} | {r.throughput:.1f} | "
            f"{r.throughput / ceilings[r.precision].seq_s:.2f} | {ratio(r.throughput, naive)} | "
            f"{ratio(r.throughput, token)} | {r.p50_ms:.1f} | {r.p95_ms:.1f} | {r.p99_ms:.1f} | "
            f"{percent(r.padding_waste)} | {percent(r.attention_waste)} |"
        )
    if alternatives:
        lines += alternatives_section(rows, ceilings, alternatives, args.stability)
    (out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(out / "throughput.png", rows, ceilings, alternatives)


def alternatives_section(
    rows: list[Row], ceilings: dict[str, Ceiling], alternatives: list[Alternative], stability: int
) -> list[str]:
    """The alternatives' table, and served ÷ best alternative beside served ÷ own ceiling."""
    lines = [
        "",
        "## What a CPU user would run instead",
        "",
        "In-process, on the same texts and threads, at the ceiling's best case (the whole set sorted by length, "
        "padded batches of ≤ N tokens, each runtime at its fastest N of "
        f"{', '.join(f'{n:,}' for n in BATCH_TOKENS)}): the checkpoint exported to ONNX by this run "
        "(`benchmarks/alternatives.py`). "
        "Max |Δlogit| is against `transformers` fp32 on every text (int8's tolerance is relative to the largest "
        "logit: `alternatives.TOLERANCE`); a row over its tolerance is marked and never counted as the best "
        "alternative. Top label as fp32: the share of texts whose argmax is `transformers` fp32's.",
        "",
        "| runtime | precision | ran | seq/s | batch tokens | single text (ms) | max abs Δlogit | tolerance "
        "| top label as fp32 | notes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for a in alternatives:
        mark = "" if a.correct else " ✗ wrong answers"
        lines.append(
            f"| {a.runtime} | {a.precision} | {a.executed} | {a.seq_s:.1f} | {a.batch_tokens:,} | {a.single_text_ms:.1f} | "
            f"{a.max_abs_diff:.1e}{mark} | {a.tolerance:.0e} | {100 * a.agreement:.1f} % | {a.note} |"
        )
    lines += [
        "",
        "| precision | served load | served seq/s | best alternative (seq/s) | served ÷ best alternative | "
        "served ÷ own ceiling |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for precision, ceiling in ceilings.items():
        best = best_throughput(alternatives, precision)
        for r in rows:
            if (r.precision, r.strategy) != (precision, "served") or r.load not in ("concurrency 16", "concurrency 64"):
                continue
            versus = f"{best.name} ({best.seq_s:.1f})" if best else "none correct"
            lines.append(
                f"| {precision} | {shown_load(r, stability)} | {r.throughput:.1f} | {versus} | "
                f"{f'{r.throughput / best.seq_s:.2f}' if best else ''} | {r.throughput / ceiling.seq_s:.2f} |"
            )
    lines += [
        "",
        "| precision | served p50 at concurrency 1 (ms) | lowest single-text latency of an alternative (ms) | "
        "target: served ≤ alternative + 2 ms |",
        "| --- | --- | --- | --- |",
    ]
    at = {(r.precision, r.strategy, r.load): r for r in rows}
    for precision in ceilings:
        fastest, served = best_latency(alternatives, precision), at.get((precision, "served", "concurrency 1"))
        if fastest is None or served is None:
            continue
        margin = served.p50_ms - fastest.single_text_ms
        lines.append(
            f"| {precision} | {served.p50_ms:.1f} | {fastest.single_text_ms:.1f} ({fastest.name}) | "
            f"{margin:+.1f} ms {'✓' if margin <= 2.0 else '✗'} |"
        )
    return lines


def plot(path: Path, rows: list[Row], ceilings: dict[str, Ceiling], alternatives: list[Alternative]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    closed = [r for r in rows if r.load.startswith("concurrency")]
    widest = max((int(r.load.split()[1]) for r in closed), default=1)
    for precision, ceiling in ceilings.items():
        color = None
        for strategy, style in (("served", "-o"), ("naive", "--s")):
            points = [r for r in closed if (r.precision, r.strategy) == (precision, strategy)]
            if not points:
                continue
            x = [int(r.load.split()[1]) for r in points]
            (line,) = left.plot(x, [r.throughput for r in points], style, label=f"{strategy} {precision}")
            right.plot(x, [r.p99_ms for r in points], style, label=f"{strategy} {precision}", color=line.get_color())
            color = color or line.get_color()
        left.axhline(ceiling.seq_s, linestyle=":", color="gray")
        left.annotate(f"in-process ceiling {precision}", (1, ceiling.seq_s), fontsize=8, va="bottom")
        # What a CPU user would run instead, in-process at its best case, in the precision's colour.
        for alt in (a for a in alternatives if a.precision == precision and a.correct):
            left.axhline(alt.seq_s, linestyle="-.", linewidth=0.9, color=color, alpha=0.7)
            left.annotate(f"{alt.name} (in-process)", (widest, alt.seq_s), fontsize=7, va="bottom", ha="right")
    for axis, label in ((left, "sequences / s"), (right, "p99 latency (ms)")):
        axis.set_xscale("log", base=2)
        axis.set(xlabel="concurrency", ylabel=label)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle("Served DistilBERT on Triton (gRPC, perf_analyzer) vs in-process ceiling and alternatives")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


# ---------------------------------------------------------------- the measurements behind the defaults


def checkpoint_of(size: str) -> Path:
    """``checkpoints/<size>-single``, written first if missing (random weights, real tokenizer)."""
    folder = PROJECT / "checkpoints" / f"{size}-single"
    if not (folder / "model.safetensors").exists():
        write_checkpoint(size, "single_label_classification", folder)
    return folder


ONE_INSTANCE = ("instance_count=1", "max_queue_size=0", "queue_timeout_us=0")  # export allows no queue on one
# Export refuses a queue policy on one instance (it stalls): "queue-stall" writes it anyway, to show why.
ONE_DESPITE_QUEUE = "one instance despite the queue"
SPIN = OPENMP_IDLE_SPIN["GOMP_SPINCOUNT"]


@dataclass(frozen=True)
class Comparison:
    """Served variants side by side: one server per environment, perf_analyzer at each load on each variant."""

    help: str
    loads: tuple[int, ...]  # concurrencies, in turn
    variants: dict[str, tuple[str, ...]]  # label → export knobs (KNOB=VALUE) beside instance_kind=cpu
    environments: tuple[dict[str, str], ...] = ({},)  # the server's, in turn
    checkpoint: str = "full"


COMPARISONS = {
    "batch-size": Comparison("max_batch_size 16 (the default) vs 64, two instances or one", (16, 64, 16, 64), {
        "max_batch_size 16 (the default)": (),
        "max_batch_size 64": ("max_batch_size=64",),
        "max_batch_size 64, 1 instance x 2 threads": (*ONE_INSTANCE, "max_batch_size=64"),
    }),
    "shared-cores": Comparison("2 instances: cores shared (the default) vs a thread each", (1, 2, 4, 16, 64), {
        "2 instances sharing the cores (the default)": (),
        "2 instances x 1 fixed thread": ("cpu_threads=1",),
    }),
    "c1-instances": Comparison("one caller: the default two instances vs one of 2 threads, twice", (1, 1), {
        "2 instances sharing the cores (the default)": (),
        "1 instance, 2 threads": ONE_INSTANCE,
    }),
    "three-instances": Comparison("the default two instances vs three, fp32 and int8", (64, 16, 64), {
        f"{p}, {n} instances": (f"precision={p}", f"instance_count={n}") for p in ("fp32", "int8") for n in (2, 3)
    }),
    "idle-spin": Comparison("OpenMP idle spin: the model's (cores.py) vs libgomp's, twice", (1, 4, 16, 64), {
        "the default export": (),
    }, ({"GOMP_SPINCOUNT": SPIN}, {"GOMP_SPINCOUNT": "300000"}) * 2),
    "queue-delay": Comparison("batching delay 0 (the default) vs 500 µs, 1 to 64 callers", (1, 4, 16, 64, 1), {
        "queue delay 0 (the default)": (),
        "queue delay 500 us": ("max_queue_delay_us=500",),
    }),
    "queue-stall": Comparison("tiny model, 16 callers: a queue policy stalls one instance, not two", (16, 16), {
        "1 instance, no queue policy": ONE_INSTANCE,
        "1 instance, max_queue_size 128": (ONE_DESPITE_QUEUE, "max_queue_size=128"),
        "2 instances x 1 thread, max_queue_size 128": ("max_queue_size=128",),
    }, checkpoint="tiny"),
}  # fmt: skip


def compare(comparison: Comparison) -> None:
    checkpoint = checkpoint_of(comparison.checkpoint)
    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(checkpoint)(english_texts(600), truncation=True)["input_ids"]
    for env in comparison.environments:
        with tempfile.TemporaryDirectory() as tmp, mock.patch.dict(os.environ, env):
            repository, models = Path(tmp) / "repository", {}
            for index, (label, knobs) in enumerate(comparison.variants.items()):
                items = [f"model_name=variant_{index}", "instance_kind=cpu", *(k for k in knobs if "=" in k)]
                model_dir = write_model(checkpoint, repository, serving_config(items))
                if ONE_DESPITE_QUEUE in knobs:
                    config = model_dir / "config.pbtxt"
                    config.write_text(re.sub(r"count: \d+", "count: 1", config.read_text()))
                models[label] = f"variant_{index}"
            data = write_token_input_data(ids, Path(tmp) / "input_data.json")
            shown_env = " ".join(f"{k}={v}" for k, v in env.items())
            with LocalServer(options_on_free_ports(repository)) as server:
                for concurrency, (label, model) in itertools.product(comparison.loads, models.items()):
                    before = model_counters(server.metrics_url, model)
                    try:  # 5 s windows within 30 %
                        result = run_perf_analyzer(model, server.grpc_url, data, concurrency, None, 5000, 30)
                    except RuntimeError as error:
                        print(f"{label} {shown_env} c={concurrency}: {str(error).strip().splitlines()[-1]}")
                        continue
                    forwards = model_counters(server.metrics_url, model, since=before)
                    passes = max(forwards["forwards"], 1)
                    mean_ms, texts = forwards["forward_us"] / passes / 1e3, forwards["sequences"] / passes
                    forward = f"mean forward {mean_ms:.2f} ms of {texts:.1f} texts"
                    print(f"{label} {shown_env} c={concurrency}: {result}, {forward}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=PRECISIONS)
    parser.add_argument("--concurrency", nargs="+", type=int, default=[1, 4, 16, 64])
    # Empty (the flag alone) skips the naive baseline or the text endpoint.
    parser.add_argument("--naive-concurrency", nargs="*", type=int, default=[1, 16, 64])
    parser.add_argument("--text-concurrency", nargs="*", type=int, default=[16, 64])
    parser.add_argument("--texts", type=int, default=600)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--interval-ms", type=int, default=6000)
    parser.add_argument("--stability", type=int, default=20, help="perf_analyzer --stability-percentage")
    parser.add_argument(
        "--no-alternatives", dest="alternatives", action="store_false", help="skip ONNX Runtime, OpenVINO"
    )
    commands = parser.add_subparsers(dest="command", metavar="MEASUREMENT", help="instead of the benchmark:")
    for name, comparison in COMPARISONS.items():
        commands.add_parser(name, help=comparison.help)
    args = parser.parse_args(argv)
    if args.command:
        compare(COMPARISONS[args.command])
    else:
        print(f"results in {run(args)}")


if __name__ == "__main__":
    main()
