"""Group sequences into forward passes that waste little compute on padding.

A forward over a padded ``[rows, longest]`` batch costs about ``rows × longest``
token-steps plus a fixed per-forward cost. Padding everything to the longest sequence
of a dynamic batch wastes most of the work on mixed-length traffic, while one forward
per sequence pays the fixed cost every time. Sorting by length and cutting the sorted
list where it minimises ``Σ rows × longest + overhead × forwards`` gets both right.
"""

from __future__ import annotations

import numpy as np

# Candidate chunk starts up to which plan_forwards searches in Python rather than numpy.
_PYTHON_WINDOW = 48


def plan_forwards(lengths: list[int] | np.ndarray, overhead_tokens: float, max_tokens: int) -> list[np.ndarray]:
    """Indices into ``lengths`` for each forward pass, shortest sequences first.

    ``overhead_tokens`` is the fixed cost of one forward expressed in padded tokens;
    ``max_tokens`` caps ``rows × longest`` of one forward (memory), except that a
    single sequence always gets its own forward.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    n = lengths.size
    if n == 0:
        return []
    order = np.argsort(lengths, kind="stable")
    sorted_lengths = lengths[order].tolist()

    # best[j] = least cost of the first j sorted sequences; cut[j] = start of the last chunk. The last
    # chunk [i, j) costs (j − i) × longest + overhead, so the best i minimises best[i] − i × longest,
    # over the starts whose chunk fits max_tokens. This runs before every forward: over a window of a
    # few dozen starts a Python min is several times cheaper than the numpy calls that pay off on long ones.
    best, cut = [0.0] * (n + 1), [0] * (n + 1)
    best_array, starts = np.zeros(n + 1), np.arange(n + 1)
    for j in range(1, n + 1):
        longest = sorted_lengths[j - 1]
        first = max(0, j - max(1, max_tokens // longest))  # one sequence always fits
        if j - first <= _PYTHON_WINDOW:
            i = min(range(first, j), key=lambda i: best[i] - i * longest)
        else:
            i = first + int(np.argmin(best_array[first:j] - longest * starts[first:j]))
        best[j] = best_array[j] = best[i] + (j - i) * longest + overhead_tokens
        cut[j] = i

    chunks = []
    j = n
    while j > 0:
        chunks.append(order[cut[j] : j])
        j = cut[j]
    return chunks[::-1]


def token_budget_groups(lengths: list[int] | np.ndarray, max_tokens: int) -> list[np.ndarray]:
    """Length-sorted groups of sequence indices with at most ``max_tokens`` real tokens each.

    For the packed forward, which spends nothing on padding: groups only bound memory.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(lengths, kind="stable")
    groups, start, total = [], 0, 0
    for position, index in enumerate(order):
        if position > start and total + lengths[index] > max_tokens:
            groups.append(order[start:position])
            start, total = position, 0
        total += int(lengths[index])
    if start < len(order):
        groups.append(order[start:])
    return groups


def round_up_geometric(n: int, steps_per_octave: int = 8) -> int:
    """``n`` rounded up onto a geometric grid: at most 1/steps_per_octave larger.

    Activation sizes that vary with every batch fragment glibc's heap (the process grows
    under mixed traffic); on this grid they take a few distinct values per power of two,
    so freed blocks are reused, for an average of about 6 % extra rows at 8 steps per octave.
    """
    if n <= steps_per_octave:
        return n
    step = 1 << (n.bit_length() - 1 - steps_per_octave.bit_length() + 1)
    return -(-n // step) * step
