"""The in-process ceiling: the model called directly, at its best batch shape.

This is the yardstick served throughput is measured against: the same texts, the same
precision and the same thread count as the server, with none of the serving stack.
Two in-process strategies are timed, each at every batch size of ``BATCH_TOKENS``, and the
fastest strategy at its best batch size is the ceiling:

    transformers  ``DistilBertForSequenceClassification`` itself on the whole set sorted
                  by length, cut into padded batches of at most that many tokens
    packed        the engine's packed forward (``clf_serving/packed.py``) on the whole set
                  sorted by length, in groups of at most that many real tokens

At precision int8 only the packed forward runs int8 (the engine loads the model in fp32
and quantizes the packed forward's linear layers), so the transformers strategy is not
timed there (``transformers_seq_s`` None): it would be the fp32 model under an int8 label.

Single-text latency (one text, one forward of the engine, median over texts spread
evenly through the set) is the yardstick for p50 latency at concurrency 1.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import project_paths  # noqa: F401  (build/, docker/ and the models' packages by name)

# Tokens in one batch, at most: every in-process runtime (this ceiling, benchmarks/alternatives.py) is
# timed at each and counted at its fastest, its best case. On the 2-core Xeon the packed forward was
# fastest at 2,048 tokens in fp32 and 512 in int8 (1.9 × its speed at 8,192: the per-token passes stay
# in cache), ONNX Runtime and OpenVINO at 512–2,048; a larger budget is kept for machines with more
# cores or cache (docs/BENCHMARKS.md).
BATCH_TOKENS = (512, 2048, 8192)


@dataclass(frozen=True)
class Ceiling:
    precision: str
    threads: int
    transformers_seq_s: float | None  # None at int8: the engine's transformers model is fp32 there
    packed_seq_s: float
    single_text_ms: float
    transformers_tokens: int | None = None  # the batch size (BATCH_TOKENS) each strategy was fastest at
    packed_tokens: int | None = None

    @property
    def seq_s(self) -> float:
        return max(self.transformers_seq_s or 0.0, self.packed_seq_s)


def fastest(run: Callable[[int], None], count: int, repeats: int) -> tuple[float, int]:
    """(sequences/s, batch tokens) of ``run(tokens)``, a pass over ``count`` sequences in batches of at most
    ``tokens`` tokens, at its fastest of ``BATCH_TOKENS``: one warm-up pass each, then the median of ``repeats``."""
    best = (0.0, 0)
    for tokens in BATCH_TOKENS:
        run(tokens)  # warm-up: allocator, kernels for these shapes
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            run(tokens)
            times.append(time.perf_counter() - started)
        best = max(best, (count / statistics.median(times), tokens))
    return best


def padded_batches(rows, max_tokens: int = 4096, pad_id: int = 0) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(indices, ids, mask) of the rows sorted by length, cut into right-padded batches of at most
    ``max_tokens`` padded tokens: the best case every runtime is measured at (ceiling, alternatives, GPU)."""
    lengths = np.array([len(row) for row in rows])
    order = np.argsort(lengths, kind="stable")
    batches, start = [], 0
    while start < len(order):
        end = start + 1
        while end < len(order) and (end + 1 - start) * lengths[order[end]] <= max_tokens:
            end += 1
        batch = order[start:end]
        ids = np.full((len(batch), int(lengths[batch].max())), pad_id, dtype=np.int64)
        mask = np.zeros_like(ids)
        for r, i in enumerate(batch):
            ids[r, : lengths[i]] = rows[i]
            mask[r, : lengths[i]] = 1
        batches.append((batch, ids, mask))
        start = end
    return batches


def measure_ceiling(
    checkpoint: Path,
    ids: list[list[int]],
    precision: str,
    threads: int,
    repeats: int = 2,
    latency_texts: int = 120,
) -> Ceiling:
    import torch

    from clf_serving.batching import token_budget_groups
    from clf_serving.engine import ClassifierEngine
    from clf_serving.settings import ServingSettings
    from clf_serving.validation import Sequence

    torch.set_num_threads(threads)
    engine = ClassifierEngine.load(checkpoint, torch.device("cpu"), ServingSettings(precision=precision))
    model = engine.model
    rows = [np.asarray(row, dtype=np.int64) for row in ids]
    lengths = np.array([len(row) for row in rows])

    def transformers_pass(tokens: int):
        with torch.inference_mode():
            for _, padded, mask in padded_batches(rows, tokens):
                model(input_ids=torch.from_numpy(padded), attention_mask=torch.from_numpy(mask))

    def packed_pass(tokens: int):
        for group in token_budget_groups(lengths, tokens):
            engine.packed.logits([rows[i] for i in group], [None] * len(group))

    def single_text_ms() -> float:
        # Evenly spaced over the set, so the sample has the length mix perf_analyzer sends.
        sample = rows[:: max(1, len(rows) // latency_texts)]
        engine.classify([Sequence(sample[0], None)])
        latencies = []
        for row in sample:
            started = time.perf_counter()
            engine.classify([Sequence(row, None)])
            latencies.append((time.perf_counter() - started) * 1e3)
        return statistics.median(latencies)

    transformers, transformers_tokens = (
        (None, None) if precision == "int8" else fastest(transformers_pass, len(rows), repeats)
    )
    packed, packed_tokens = fastest(packed_pass, len(rows), repeats)
    return Ceiling(
        precision=precision,
        threads=threads,
        transformers_seq_s=transformers,
        packed_seq_s=packed,
        single_text_ms=single_text_ms(),
        transformers_tokens=transformers_tokens,
        packed_tokens=packed_tokens,
    )
