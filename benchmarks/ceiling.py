"""The in-process ceiling: the model called directly, at its best batch shape.

The yardstick served throughput is measured against: the same texts, precision and thread count as
the server, with none of the serving stack. Two strategies (``passes``: transformers padded, the
engine's packed forward) are timed at each batch size of ``BATCH_TOKENS``; the faster at its best size
is the ceiling. At int8 only the packed forward runs int8 (the engine quantizes its linear layers), so
transformers is not timed there. Single-text latency is the yardstick for p50 at concurrency 1.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Tokens in one batch, at most: every in-process runtime (this ceiling, alternatives.py) is timed at
# each and counted at its fastest, its best case; the largest is for machines with more cores or cache.
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


def fastest(
    run: Callable[[int], None], count: int, repeats: int, sizes=BATCH_TOKENS, sync: Callable[[], None] = lambda: None
) -> tuple[float, int]:
    """(sequences/s, batch tokens) of ``run(tokens)``, a pass over ``count`` sequences in batches of at most
    ``tokens`` tokens, at its fastest of ``sizes``: one warm-up pass each, then the median of ``repeats``
    (``sync``: wait for a device to finish)."""
    best = (0.0, 0)
    for tokens in sizes:
        run(tokens)  # warm-up: allocator, kernels for these shapes
        sync()
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            run(tokens)
            sync()
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
        for r, i in enumerate(batch):
            ids[r, : lengths[i]] = rows[i]
        mask = (np.arange(ids.shape[1]) < lengths[batch, None]).astype(np.int64)
        batches.append((batch, ids, mask))
        start = end
    return batches


def transformers_logits(model, rows, device=None, max_tokens: int = 4096) -> np.ndarray:
    """``model``'s logits for ``rows`` in padded batches of at most ``max_tokens`` tokens, as fp32 numpy."""
    import torch

    out = np.empty((len(rows), model.config.num_labels), dtype=np.float32)
    with torch.inference_mode():
        for batch, ids, mask in padded_batches(rows, max_tokens):
            logits = model(input_ids=torch.from_numpy(ids).to(device), attention_mask=torch.from_numpy(mask).to(device))
            out[batch] = logits.logits.float().cpu().numpy()
    return out


def load_engine(checkpoint: Path, precision: str, device=None):
    """The served engine (``token_model/engine.py``) for ``checkpoint`` at ``precision``, on ``device`` (the CPU)."""
    import torch

    from distilbert_serving.token_model.engine import ClassifierEngine
    from distilbert_serving.token_model.settings import ServingSettings

    return ClassifierEngine.load(checkpoint, device or torch.device("cpu"), ServingSettings(precision=precision))


def engine_logits(engine, rows) -> np.ndarray:
    """The engine's logits for ``rows`` (token ids) in one call, as numpy: synchronised on a device."""
    from distilbert_serving.token_model.validation import Sequence

    logits, _ = engine.classify([Sequence(np.asarray(row, dtype=np.int64), None) for row in rows])
    return logits


def passes(engine, rows: list[np.ndarray], device=None) -> dict[str, Callable[[int], None]]:
    """A pass over ``rows`` in batches of at most N tokens by each strategy: ``transformers``, padded;
    ``packed``, the engine's packed forward on groups of real tokens."""
    import torch

    from distilbert_serving.token_model.batching import token_budget_groups

    def transformers(tokens: int) -> None:
        with torch.inference_mode():
            for _, ids, mask in padded_batches(rows, tokens):
                engine.model(
                    input_ids=torch.from_numpy(ids).to(device), attention_mask=torch.from_numpy(mask).to(device)
                )

    def packed(tokens: int) -> None:
        for group in token_budget_groups([len(row) for row in rows], tokens):
            engine.packed.logits([rows[i] for i in group], [None] * len(group))

    return {"transformers": transformers, "packed": packed}


def median_ms(call: Callable[[np.ndarray], object], rows: list[np.ndarray], warmup: int) -> float:
    """Median ms of ``call(row)`` over ``rows``, after calling it on the first ``warmup`` of them."""
    for row in rows[:warmup]:
        call(row)
    latencies = []
    for row in rows:
        started = time.perf_counter()
        call(row)
        latencies.append((time.perf_counter() - started) * 1e3)
    return statistics.median(latencies)


def single_text_ms(engine, rows: list[np.ndarray], samples: int = 120) -> float:
    """Median ms of one text through the engine, on texts spread through the set (perf_analyzer's length mix)."""
    return median_ms(lambda row: engine_logits(engine, [row]), rows[:: max(1, len(rows) // samples)], warmup=5)


def measure_ceiling(checkpoint: Path, ids: list[list[int]], precision: str, threads: int, repeats: int = 2) -> Ceiling:
    import torch

    torch.set_num_threads(threads)
    engine = load_engine(checkpoint, precision)
    rows = [np.asarray(row, dtype=np.int64) for row in ids]
    way = passes(engine, rows)
    transformers = (None, None) if precision == "int8" else fastest(way["transformers"], len(rows), repeats)
    packed = fastest(way["packed"], len(rows), repeats)
    return Ceiling(
        precision, threads, transformers[0], packed[0], single_text_ms(engine, rows), transformers[1], packed[1]
    )
