"""Check one request's token tensors and cut them into per-sequence rows.

Every rule here produces an ``InvalidRequest`` whose message names the input, what was
wrong and the allowed range, so a caller can fix the request without reading code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np


class InvalidRequest(ValueError):
    """A request that cannot be served as sent; the message is returned to the caller."""


class Limits(NamedTuple):
    """What the checkpoint accepts: ids below ``vocab_size``, sequences of at most ``max_length`` tokens."""

    vocab_size: int
    max_length: int


@dataclass(frozen=True)
class Sequence:
    """One sequence of a request, trimmed of trailing padding.

    ``mask`` is None when every kept token is attended (the common, right-padded case),
    so the engine only carries explicit masks for sequences that need them.
    """

    ids: np.ndarray
    mask: np.ndarray | None

    @property
    def length(self) -> int:
        return int(self.ids.shape[0])


def validate_requests(entries: list, limits: Limits) -> list:
    """``validate_request`` for each entry that is a tuple of arrays (ids, mask or None); any other entry
    (what already ended its request) stays as it is, and a request that fails gets its ``InvalidRequest``.

    The one pass over every id, the vocabulary check, runs once over all the requests' ids: an execute of
    single texts pays for one numpy check, not one per request. Where it finds an id out of range, each
    request is checked on its own, so only the request at fault gets the error.
    """
    ids = [entry[0] for entry in entries if isinstance(entry, tuple)]
    integers = all(isinstance(a, np.ndarray) and a.ndim == 2 and a.size and a.dtype.kind in "iu" for a in ids)
    checked = bool(ids) and integers and _in_vocabulary(np.concatenate([a.ravel() for a in ids]), limits)
    results = []
    for entry in entries:
        try:
            results.append(validate_request(*entry, limits, ids_checked=checked) if isinstance(entry, tuple) else entry)
        except InvalidRequest as error:
            results.append(error)
    return results


def _in_vocabulary(ids: np.ndarray, limits: Limits) -> bool:
    return bool(ids.min() >= 0 and ids.max() < limits.vocab_size)


def validate_request(
    input_ids: np.ndarray, attention_mask: np.ndarray | None, limits: Limits, *, ids_checked: bool = False
) -> list[Sequence]:
    """Rows of a ``[batch, length]`` request, or ``InvalidRequest`` saying what is wrong.

    ``ids_checked``: every id is known to be in the vocabulary already (``validate_requests``).
    """
    if input_ids.ndim != 2:
        raise InvalidRequest(f"input_ids must have shape [batch, length]; got shape {list(input_ids.shape)}")
    batch, length = input_ids.shape
    if batch == 0:
        raise InvalidRequest("input_ids holds no sequences (batch size 0)")
    if length == 0:
        raise InvalidRequest("input_ids is empty: a sequence needs at least 1 token, e.g. [CLS] [SEP]")
    if length > limits.max_length:
        raise InvalidRequest(
            f"sequence length {length} exceeds the model's maximum of {limits.max_length} tokens; "
            f"truncate to at most {limits.max_length}"
        )
    if not np.issubdtype(input_ids.dtype, np.integer):
        raise InvalidRequest(f"input_ids must be INT64 token ids; got {input_ids.dtype}")
    if not ids_checked and not _in_vocabulary(input_ids, limits):
        out_of_range = (input_ids < 0) | (input_ids >= limits.vocab_size)
        row, position = (int(i) for i in np.argwhere(out_of_range)[0])
        raise InvalidRequest(
            f"input_ids[{row}][{position}] = {int(input_ids[row, position])} is outside the vocabulary "
            f"[0, {limits.vocab_size}); {int(out_of_range.sum())} id(s) out of range"
        )
    if attention_mask is None:
        return [Sequence(ids=input_ids[row].astype(np.int64, copy=False), mask=None) for row in range(batch)]

    if attention_mask.shape != input_ids.shape:
        raise InvalidRequest(
            f"attention_mask shape {list(attention_mask.shape)} differs from input_ids shape {list(input_ids.shape)}"
        )
    if not np.isin(attention_mask, (0, 1)).all():
        bad = attention_mask[~np.isin(attention_mask, (0, 1))][0]
        raise InvalidRequest(f"attention_mask values must be 0 or 1; found {bad}")
    rows = []
    for row in range(batch):
        attended = np.flatnonzero(attention_mask[row])
        if attended.size == 0:
            raise InvalidRequest(f"attention_mask row {row} is all zeros: at least one token must be attended")
        # Trailing padding changes nothing in the output; dropping it lets the engine
        # re-pad this sequence together with others of similar length.
        end = int(attended[-1]) + 1
        mask = attention_mask[row, :end]
        rows.append(
            Sequence(
                ids=input_ids[row, :end].astype(np.int64, copy=False),
                mask=None if mask.all() else mask.astype(np.int64),
            )
        )
    return rows
