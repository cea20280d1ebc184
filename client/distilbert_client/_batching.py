"""Split many texts into requests that pad little, and put answers back in input order.

Texts are sorted by token length, then cut into requests of at most ``max_rows`` rows, so
each request holds texts of similar length and is padded only to its own longest text.
The server trims the padding again (the attention mask says where it is) and its dynamic
batcher merges concurrent requests into full forward passes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Chunk", "pad_chunk", "plan_chunks", "reorder"]


@dataclass(frozen=True)
class Chunk:
    """One request: the input positions it carries and its padded ``[rows, length]`` arrays."""

    indices: tuple[int, ...]
    arrays: Mapping[str, np.ndarray]


def plan_chunks(lengths: Sequence[int], max_rows: int, *, uniform_length: bool = False) -> list[tuple[int, ...]]:
    """Input positions per request, longest texts first.

    ``uniform_length``: every request holds texts of one length only, for a model that
    takes no attention mask and so cannot be sent padding.
    """
    if max_rows < 1:
        raise ValueError(f"max_rows must be at least 1; got {max_rows}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    chunks: list[tuple[int, ...]] = []
    current: list[int] = []
    for index in order:
        if current and (len(current) == max_rows or (uniform_length and lengths[current[0]] != lengths[index])):
            chunks.append(tuple(current))
            current = []
        current.append(index)
    if current:
        chunks.append(tuple(current))
    return chunks


def pad_chunk(
    encoded: Mapping[str, Sequence[Sequence[int]]],
    indices: Sequence[int],
    pad_values: Mapping[str, int],
    dtypes: Mapping[str, type],
    *,
    attention_mask: bool = True,
) -> Chunk:
    """Right-padded arrays of the rows at ``indices``, with an ``attention_mask`` when asked."""
    rows = [encoded["input_ids"][i] for i in indices]
    width = max(len(row) for row in rows)
    arrays = {}
    for name, values in encoded.items():
        if name == "attention_mask":
            continue
        array = np.full((len(indices), width), pad_values.get(name, 0), dtype=dtypes[name])
        for r, i in enumerate(indices):
            array[r, : len(values[i])] = values[i]
        arrays[name] = array
    if attention_mask:
        mask = np.zeros((len(indices), width), dtype=dtypes.get("attention_mask", np.int64))
        for r, row in enumerate(rows):
            mask[r, : len(row)] = 1
        arrays["attention_mask"] = mask
    return Chunk(indices=tuple(indices), arrays=arrays)


def reorder(chunks: Sequence[Chunk], answers: Sequence[Sequence], size: int) -> list:
    """Per-row answers of each chunk, placed back at their input positions."""
    out: list = [None] * size
    for chunk, rows in zip(chunks, answers, strict=True):
        if len(rows) != len(chunk.indices):
            raise ValueError(f"a request of {len(chunk.indices)} rows was answered with {len(rows)}")
        for index, row in zip(chunk.indices, rows, strict=True):
            out[index] = row
    return out
