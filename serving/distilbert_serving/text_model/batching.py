"""The rows of an execute's requests: gathered for the token model, its answers split back per request.

Each stage of ``execute`` keeps one entry per request: its list of rows, or the error that ends
it (anything but a list), so every request gets exactly one response. The rows of all valid
requests go to the token model in chunks of at most its ``max_batch_size``; a chunk that fails
fails only the requests with a row in it, and a chunk carries the latest deadline of its requests.
"""

from __future__ import annotations

import numpy as np

from ..outcomes import row_spans


def all_rows(entries: list) -> list:
    """The rows of every request that has rows, in request order."""
    return [row for entry in entries if isinstance(entry, list) for row in entry]


def chunks_of(span: slice, chunk_rows: int) -> range:
    """The chunks (of ``chunk_rows`` rows each) that hold the rows ``span`` of ``all_rows``."""
    return range(span.start // chunk_rows, (span.stop - 1) // chunk_rows + 1)


def split_answers(entries: list, answers: list, chunk_rows: int) -> list:
    """Each request's part of the chunks' answers, or its error.

    ``answers[c]`` answers rows ``[c × chunk_rows, (c + 1) × chunk_rows)`` of ``all_rows(entries)``:
    a tuple of arrays (one row each), or anything else when that chunk failed. A request that has
    a row in a failed chunk gets that chunk's error; the others get their rows of every array.
    """
    results = []
    for entry, span in zip(entries, row_spans(entries), strict=True):
        if span is None:
            results.append(entry)
            continue
        chunks = chunks_of(span, chunk_rows)
        failed = next((answers[c] for c in chunks if not isinstance(answers[c], tuple)), None)
        if failed is not None:
            results.append(failed)
            continue
        parts = [
            tuple(array[max(span.start - c * chunk_rows, 0) : span.stop - c * chunk_rows] for array in answers[c])
            for c in chunks
        ]
        results.append(
            parts[0] if len(parts) == 1 else tuple(np.concatenate(arrays) for arrays in zip(*parts, strict=True))
        )
    return results


def chunk_deadlines(entries: list, deadlines: list, chunk_rows: int) -> list:
    """Each chunk's deadline: the latest of its requests' ``deadlines`` (one per entry), or None when one
    of them has none, for the token model to drop the chunk only once nobody waits for its answer."""
    by_chunk: dict[int, list] = {}
    for span, deadline in zip(row_spans(entries), deadlines, strict=True):
        for chunk in [] if span is None else chunks_of(span, chunk_rows):
            by_chunk.setdefault(chunk, []).append(deadline)
    return [None if None in found else max(found) for _, found in sorted(by_chunk.items())]
