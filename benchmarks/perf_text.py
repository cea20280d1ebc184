"""Raw-text endpoint vs token endpoint: tokenization cost and perf_analyzer throughput.

    python benchmarks/perf_text.py                                  # full-size checkpoint, concurrency 16
    python benchmarks/perf_text.py --text-instances 1 2 --interval-ms 4000

Exports the checkpoint into a temporary repository (token model + one text model per
instance count), starts tritonserver, then:
  1. tokenization cost in-process: ms per batch of 1, 16 and 64 texts through the text
     model's own code path (``text_serving.encoding.encode_items``);
  2. perf_analyzer over gRPC at the given concurrency on the token model (token ids from the
     same tokenizer) and on each text model (the same texts as strings), one text per request;
  3. server-side tokenization time per execute, from the text model's Prometheus counters.
Numbers on a shared 2-core machine are indicative only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import project_paths  # noqa: F401  (build/, docker/ and the models' packages by name)
from corpus import english_texts
from export import PROJECT, TEXT_MODEL_SOURCE, ServingConfig, TextModelConfig, write_model, write_text_model
from launch import LocalServer, free_port
from perf_analyzer import model_counters, run_perf_analyzer
from perf_input import write_text_input_data, write_token_input_data
from server_flags import ServerOptions

CHECKPOINT = PROJECT / "checkpoints" / "full-single"
# The text model's counters of its tokenizer calls (text_serving/metrics.py).
TOKENIZE_COUNTERS = ("calls", "rows", "duration_us")


def tokenization_cost(tokenizer, texts: list[str], max_length: int, repeats: int = 20) -> dict[int, float]:
    """Median ms to tokenize one batch of N texts, as the text model's execute does."""
    sys.path.insert(0, str(TEXT_MODEL_SOURCE))
    from text_serving.encoding import encode_items
    from text_serving.validation import TextItem, TokenizeOptions

    costs = {}
    for batch in (1, 16, 64):
        times = []
        for r in range(repeats):
            start = (r * batch) % max(1, len(texts) - batch)
            items = [TextItem(t, None, TokenizeOptions()) for t in texts[start : start + batch]]
            began = time.perf_counter()
            encode_items(tokenizer, items, max_length)
            times.append((time.perf_counter() - began) * 1e3)
        costs[batch] = statistics.median(times)
    return costs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=CHECKPOINT)
    parser.add_argument("--texts", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--interval-ms", type=int, default=5000)
    # Lenient: other work shares this machine and 20-100 % never settled there; 1000 takes the
    # mean of the first three windows. Pass 20 on a quiet machine.
    parser.add_argument("--stability-percentage", type=int, default=1000)
    parser.add_argument("--text-instances", type=int, nargs="+", default=[TextModelConfig().instance_count])
    args = parser.parse_args(argv)

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.checkpoint)
    texts = english_texts(args.texts)
    ids = tokenizer(texts, truncation=True, max_length=512)["input_ids"]
    print(f"{len(texts)} texts, mean {statistics.mean(map(len, ids)):.0f} tokens, max {max(map(len, ids))}")
    for batch, ms in tokenization_cost(tokenizer, texts, 512).items():
        print(f"tokenize in-process: batch {batch:>2}: {ms:.2f} ms ({ms / batch:.3f} ms/text)")

    with tempfile.TemporaryDirectory() as tmp:
        repository, data = Path(tmp) / "repository", Path(tmp)
        serving = ServingConfig(instance_kind="cpu")
        write_model(args.checkpoint, repository, serving)
        text_models = {}
        for count in args.text_instances:
            name = f"distilbert_text_x{count}"
            write_text_model(
                args.checkpoint, repository, serving, TextModelConfig(model_name=name, instance_count=count)
            )
            text_models[name] = count
        token_data = write_token_input_data(ids, data / "tokens.json")
        text_data = write_text_input_data(texts, data / "texts.json")
        options = ServerOptions(str(repository), grpc_port=free_port(), http_port=free_port(), metrics_port=free_port())
        server = LocalServer(options)
        server.start(timeout_s=600)
        stability = ("--stability-percentage", str(args.stability_percentage))
        try:
            token = run_perf_analyzer(
                serving.model_name, server.grpc_url, token_data, concurrency=args.concurrency,
                measurement_interval_ms=args.interval_ms, extra_args=stability,
            )  # fmt: skip
            print(f"token model  c={args.concurrency}: {token}", flush=True)
            for name, count in text_models.items():
                before = model_counters(server.metrics_url, name, "text_tokenize", TOKENIZE_COUNTERS)
                text = run_perf_analyzer(
                    name, server.grpc_url, text_data, concurrency=args.concurrency,
                    measurement_interval_ms=args.interval_ms, extra_args=stability,
                )  # fmt: skip
                after = model_counters(server.metrics_url, name, "text_tokenize", TOKENIZE_COUNTERS)
                calls, rows, us = (after[k] - before[k] for k in TOKENIZE_COUNTERS)
                print(
                    f"text model ({count} instance(s)) c={args.concurrency}: {text}\n"
                    f"  throughput ratio text/token {text.throughput / token.throughput:.3f}; server-side "
                    f"tokenization {us / max(calls, 1) / 1e3:.2f} ms per execute of {rows / max(calls, 1):.1f} texts "
                    f"= {us / max(rows, 1) / 1e3:.3f} ms per text, vs {1e3 / text.throughput:.1f} ms per text served",
                    flush=True,
                )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
