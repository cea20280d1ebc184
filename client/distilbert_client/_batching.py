"""Split many texts into requests that pad little, and put answers back in input order.

Sorted by token length, each request is padded only to its own longest text; the server trims the
padding again (by the attention mask) and its dynamic batcher merges concurrent requests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Chunk:
    """One request: the input positions it carries and its padded ``[rows, length]`` arrays."""

    indices: tuple[int, ...]
    arrays: Mapping[str, np.ndarray]


def plan_chunks(lengths: Sequence[int], max_rows: int, *, uniform_length: bool = False) -> list[tuple[int, ...]]:
    """Input positions per request, longest texts first; of one length each if ``uniform_length`` (no mask)."""
    if max_rows < 1:
        raise ValueError(f"max_rows must be at least 1; got {max_rows}")
    chunks: list[list[int]] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        if chunks and len(chunks[-1]) < max_rows and not (uniform_length and lengths[chunks[-1][0]] != lengths[index]):
            chunks[-1].append(index)
        else:
            chunks.append([index])
    return [tuple(chunk) for chunk in chunks]


def pad_chunk(
    encoded: Mapping[str, list], indices: Sequence[int], pad_values: dict, dtypes: dict, *, attention_mask: bool = True
) -> Chunk:
    """Right-padded arrays of the rows at ``indices``, with an ``attention_mask`` when asked."""
    lengths = np.array([len(encoded["input_ids"][i]) for i in indices])
    mask = np.arange(lengths.max()) < lengths[:, None]  # True where a row has a token, row-major as the ids
    arrays = {}
    for name, rows in encoded.items():
        if name != "attention_mask":
            arrays[name] = np.full(mask.shape, pad_values.get(name, 0), dtype=dtypes[name])
            arrays[name][mask] = [token for i in indices for token in rows[i]]
    if attention_mask:
        arrays["attention_mask"] = mask.astype(dtypes.get("attention_mask", np.int64))
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
