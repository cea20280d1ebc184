"""What the sync and async clients share: texts → requests, and answers → results.

Neither touches the network here; ``_sync`` and ``_async`` send the requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tritonclient.grpc as grpcclient

from ._batching import Chunk, pad_chunk, plan_chunks, reorder
from ._errors import InvalidInputError
from ._model_info import ModelInfo
from ._results import MULTI_LABEL, SINGLE_LABEL, Classification, build_result
from ._tokenize import Encoder, Truncation

__all__ = ["CHANNEL_ARGS", "Core", "Prepared", "connection_options", "validate_options"]


# tritonclient's own channel options, plus a reconnect backoff capped at 1 s: gRPC's default
# grows to 120 s, so a restarted server would go unseen (by retries and wait_until_ready)
# for up to two minutes after it is back.
_MAX_MESSAGE_BYTES = 2**31 - 1
CHANNEL_ARGS = [
    ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


def connection_options(root_certificates: str | None) -> dict:
    """Keyword arguments for a ``tritonclient`` gRPC client: TLS when a CA file is given."""
    options: dict = {"channel_args": CHANNEL_ARGS}
    if root_certificates is not None:
        options.update(ssl=True, root_certificates=str(root_certificates))
    return options


@dataclass(frozen=True)
class Prepared:
    """The requests for one ``classify`` call."""

    single: bool
    size: int
    chunks: tuple[Chunk, ...]


def _as_texts(value, what: str) -> list[str]:
    if isinstance(value, (bytes, bytearray)) or not isinstance(value, Sequence):
        raise InvalidInputError(f"{what} must be a str or a sequence of str; got {type(value).__name__}")
    texts = list(value)
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidInputError(f"{what}[{index}] must be a str; got {type(text).__name__}")
    return texts


def validate_options(top_k: int | None, threshold: float) -> None:
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise InvalidInputError(f"top_k must be a positive int or None; got {top_k!r}")
    if not 0.0 <= threshold <= 1.0:
        raise InvalidInputError(f"threshold must be within [0, 1]; got {threshold!r}")


def _scores_from_logits(logits: np.ndarray, problem_type: str) -> np.ndarray:
    """The server's score function, for a model that serves logits only."""
    if problem_type == SINGLE_LABEL:
        exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return exp / exp.sum(axis=-1, keepdims=True)
    if problem_type == MULTI_LABEL:
        return 1.0 / (1.0 + np.exp(-logits))
    return logits


class Core:
    """Tokenize, split, pad; then read answers back into ``Classification`` objects."""

    def __init__(self, info: ModelInfo, tokenizer, rows_per_request: int | None = None) -> None:
        if rows_per_request is not None and rows_per_request < 1:
            raise ValueError(f"rows_per_request must be at least 1; got {rows_per_request}")
        self.info = info
        self.encoder = Encoder(tokenizer, info)
        self.rows_per_request = min(rows_per_request or info.max_batch_size, info.max_batch_size)
        self._dtypes = {i.name: i.numpy_dtype for i in info.inputs}
        self._datatypes = {i.name: i.datatype for i in info.inputs}
        self.outputs = ["logits"] + ([info.scores_output] if info.scores_output else [])

    def prepare(self, text_or_texts, text_pair=None, truncation: Truncation = True) -> Prepared:
        single = isinstance(text_or_texts, str)
        texts = [text_or_texts] if single else _as_texts(text_or_texts, "texts")
        pairs = None
        if text_pair is not None:
            if single != isinstance(text_pair, str):
                raise InvalidInputError("text_pair must be a str for one text, or a sequence of str for a sequence")
            pairs = [text_pair] if single else _as_texts(text_pair, "text_pair")
            if len(pairs) != len(texts):
                raise InvalidInputError(f"{len(texts)} texts but {len(pairs)} text pairs: give one pair per text")
        if not texts:
            return Prepared(single=False, size=0, chunks=())

        encoded = self.encoder.encode(texts, pairs, truncation)
        lengths = [len(row) for row in encoded["input_ids"]]
        mask = self.info.has_attention_mask
        chunks = tuple(
            pad_chunk(encoded, indices, self.encoder.pad_values, self._dtypes, attention_mask=mask)
            for indices in plan_chunks(lengths, self.rows_per_request, uniform_length=not mask)
        )
        return Prepared(single=single, size=len(texts), chunks=chunks)

    def infer_inputs(self, chunk: Chunk) -> list[grpcclient.InferInput]:
        inputs = []
        for name, array in chunk.arrays.items():
            tensor = grpcclient.InferInput(name, list(array.shape), self._datatypes[name])
            tensor.set_data_from_numpy(array)
            inputs.append(tensor)
        return inputs

    def requested_outputs(self) -> list[grpcclient.InferRequestedOutput]:
        return [grpcclient.InferRequestedOutput(name) for name in self.outputs]

    def answer_rows(self, result) -> list[tuple[np.ndarray, np.ndarray]]:
        """(logits, scores) per row of one ``InferResult``."""
        logits = result.as_numpy("logits")
        scores = (
            result.as_numpy(self.info.scores_output)
            if self.info.scores_output
            else _scores_from_logits(logits, self.info.problem_type)
        )
        return list(zip(logits, scores, strict=True))

    def results(
        self, prepared: Prepared, answers: Sequence[list], top_k: int | None, threshold: float
    ) -> Classification | list[Classification]:
        rows = reorder(prepared.chunks, answers, prepared.size)
        results = [
            build_result(self.info.problem_type, self.info.labels, logits, scores, top_k=top_k, threshold=threshold)
            for logits, scores in rows
        ]
        return results[0] if prepared.single else results
