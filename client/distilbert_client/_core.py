"""The one core of the sync and async clients: their settings, their protocol, texts → requests → results.

The protocol (wait for readiness, read the config, send a request and retry it) is written once, as
*flows*: generators that yield an ``Rpc`` or a ``Sleep`` and return their result. The shells in
``_clients`` drive a flow, blocking or awaiting: each step's answer is sent back in, its error thrown in.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import tritonclient.grpc as grpcclient

from distilbert_serving.contract import DEADLINE_PARAMETER, LOGITS

from ._batching import Chunk, pad_chunk, plan_chunks, reorder
from ._errors import ClassifierError, InvalidInputError, ModelNotReadyError, ServerUnavailableError, mapped_errors
from ._model_info import ModelInfo
from ._results import Classification, build_result
from ._retry import Deadline, RetryPolicy, fails_over, next_step
from ._tokenize import Encoder, Truncation

# tritonclient's own channel options, plus a reconnect backoff capped at 1 s: gRPC's default grows to 120 s,
# so a restarted server would go unseen (by retries and wait_until_ready) for up to two minutes after it is back.
CHANNEL_ARGS = (
    ("grpc.max_send_message_length", 2**31 - 1),
    ("grpc.max_receive_message_length", 2**31 - 1),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
)
LoadBalancing = Literal["pick_first", "round_robin"]
LOAD_BALANCING: tuple[LoadBalancing, ...] = get_args(LoadBalancing)


@dataclass(frozen=True)
class ClientOptions:
    """The settings a client was made with: its constructor's arguments (see ``Classifier``)."""

    url: str
    model: str
    model_version: str
    timeout_s: float | None
    retry: RetryPolicy
    max_concurrency: int
    rows_per_request: int | None
    ready_timeout_s: float | None
    root_certificates: str | None
    load_balancing: LoadBalancing

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1; got {self.max_concurrency}")
        if self.rows_per_request is not None and self.rows_per_request < 1:
            raise ValueError(f"rows_per_request must be at least 1; got {self.rows_per_request}")
        if self.load_balancing not in LOAD_BALANCING:
            raise ValueError(f"load_balancing must be one of {LOAD_BALANCING}; got {self.load_balancing!r}")

    def channel(self) -> dict:
        """Keyword arguments for a ``tritonclient`` gRPC client: channel options, TLS when a CA file is given."""
        tls = {} if self.root_certificates is None else {"ssl": True, "root_certificates": str(self.root_certificates)}
        return {"channel_args": [*CHANNEL_ARGS, ("grpc.lb_policy_name", self.load_balancing)]} | tls


@dataclass(frozen=True)
class Rpc:
    """A call a flow asks its shell to make: ``client.<method>(**kwargs)`` on its ``tritonclient`` client."""

    method: str
    kwargs: dict

    def call(self, client):
        """Make the call on ``client``: its answer, or with an asyncio client the coroutine of it."""
        return getattr(client, self.method)(**self.kwargs)


@dataclass(frozen=True)
class Sleep:
    """A pause a flow asks its shell for (``time.sleep`` or ``asyncio.sleep``)."""

    seconds: float


Flow = Generator[Rpc | Sleep, Any, Any]


def server_deadline(timeout_s: float | None) -> dict:
    """``tritonclient`` infer arguments that tell the server a call's deadline, ``timeout_s`` from now.

    Triton's request ``timeout`` (microseconds) lets its queue policy drop a request nobody waits for
    any more; the stamp ``DEADLINE_PARAMETER`` lets the model drop one whose answer could not come in time.
    """
    if timeout_s is None:
        return {"timeout": None}
    stamp = int((time.time() + timeout_s) * 1e3)
    return {"timeout": max(int(timeout_s * 1e6), 1), "parameters": {DEADLINE_PARAMETER: stamp}}


def validate_options(top_k: int | None, threshold: float) -> None:
    """``InvalidInputError`` unless ``top_k`` and ``threshold`` are valid ``classify`` arguments."""
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise InvalidInputError(f"top_k must be a positive int or None; got {top_k!r}")
    if not 0.0 <= threshold <= 1.0:
        raise InvalidInputError(f"threshold must be within [0, 1]; got {threshold!r}")


def _as_texts(value, what: str) -> list[str]:
    if isinstance(value, (bytes, bytearray)) or not isinstance(value, Sequence):
        raise InvalidInputError(f"{what} must be a str or a sequence of str; got {type(value).__name__}")
    for index, text in enumerate(texts := list(value)):
        if not isinstance(text, str):
            raise InvalidInputError(f"{what}[{index}] must be a str; got {type(text).__name__}")
    return texts


class Core:
    """A client's flows, and the codec between texts, requests and ``Classification`` results."""

    def __init__(self, options: ClientOptions, tokenizer) -> None:
        self.options = options
        self.tokenizer = tokenizer
        self.model = {"model_name": options.model, "model_version": options.model_version}  # which model RPCs ask
        self.info: ModelInfo | None = None  # set by ``connect``

    def connect(self) -> Flow:
        """Wait for readiness if asked; read the model config and check the tokenizer against it."""
        o = self.options
        if o.ready_timeout_s is not None:
            yield from self.wait_until_ready(o.ready_timeout_s)
        request = lambda s: Rpc("get_model_config", self.model | {"as_json": True, "client_timeout": s})  # noqa: E731
        config = yield from self.retried(request, Deadline(o.timeout_s), retry_not_ready=False)
        info = ModelInfo.from_config(config)
        self.encoder = Encoder(self.tokenizer, info)
        self.rows_per_request = min(o.rows_per_request or info.max_batch_size, info.max_batch_size)
        self.info = info

    def wait_until_ready(self, timeout_s: float) -> Flow:
        """Poll until the server and the model answer ready; else the error saying which was not."""
        o = self.options
        end = time.monotonic() + timeout_s
        server_ready, last = False, "no answer"
        while True:
            try:
                with mapped_errors():
                    server_ready = yield Rpc("is_server_ready", {"client_timeout": 1.0})
                    if server_ready and (yield Rpc("is_model_ready", self.model | {"client_timeout": 1.0})):
                        return
            except ClassifierError as error:
                last = error.message
            if (left := end - time.monotonic()) <= 0:
                break
            yield Sleep(min(0.25, left))  # polls 4 times a second
        if server_ready:
            raise ModelNotReadyError(f"model {o.model!r} at {o.url} not ready after {timeout_s:g} s")
        raise ServerUnavailableError(f"server at {o.url} not ready after {timeout_s:g} s: {last}")

    def retried(self, request: Callable[[float | None], Rpc], deadline: Deadline, retry_not_ready=True) -> Flow:
        """The answer to ``request(seconds left)``, asked again for as long as ``next_step`` says so.

        A client balancing over several servers first resends a call one server turned away to the next
        (``fails_over``): during a rolling restart the stopping server refuses, the others answer.
        """
        balanced, failovers, tries = self.options.load_balancing == "round_robin", 0, 1
        while True:
            try:
                with mapped_errors():
                    return (yield request(deadline.remaining_s()))
            except ClassifierError as error:
                if balanced and fails_over(error, failovers, self.options.retry, deadline):
                    failovers += 1
                    continue
                step = next_step(error, tries, self.options.retry, deadline, retry_not_ready=retry_not_ready)
                if step is error:
                    raise
                if isinstance(step, ClassifierError):
                    raise step from error
            tries += 1
            yield Sleep(step)

    def infer(self, chunk: Chunk, deadline: Deadline) -> Flow:
        """Send one request; its rows as (logits, scores, version that answered) triples."""
        datatypes = {i.name: i.datatype for i in self.info.inputs}
        inputs = [
            grpcclient.InferInput(name, list(array.shape), datatypes[name]).set_data_from_numpy(array)
            for name, array in chunk.arrays.items()
        ]
        outputs = [grpcclient.InferRequestedOutput(name) for name in (LOGITS, self.info.scores_output)]
        kwargs = self.model | {"inputs": inputs, "outputs": outputs}
        # The deadline goes to the server as well: gRPC's ends the call there too.
        request = lambda s: Rpc("infer", kwargs | {"client_timeout": s} | server_deadline(s))  # noqa: E731
        result = yield from self.retried(request, deadline)
        logits, scores = result.as_numpy(LOGITS), result.as_numpy(self.info.scores_output)
        return [(*row, result.get_response().model_version) for row in zip(logits, scores, strict=True)]

    def classify(
        self, text_or_texts, text_pair, top_k: int | None, threshold: float, truncation: Truncation, timeout_s
    ) -> tuple[list[Flow], Callable[[list], Classification | list[Classification]]]:
        """One ``classify`` call: the flows of its requests, and the function of their answers that gives its result.

        The call's deadline (``timeout_s``, or the client's if ``...``) starts once the texts are tokenized.
        """
        single = isinstance(text_or_texts, str)
        texts = [text_or_texts] if single else _as_texts(text_or_texts, "texts")
        if text_pair is not None:
            if single != isinstance(text_pair, str):
                raise InvalidInputError("text_pair must be a str for one text, or a sequence of str for a sequence")
            text_pair = [text_pair] if single else _as_texts(text_pair, "text_pair")
            if len(text_pair) != len(texts):
                raise InvalidInputError(f"{len(texts)} texts but {len(text_pair)} text pairs: give one pair per text")
        if not texts:
            return [], lambda answers: []
        encoded = self.encoder.encode(texts, text_pair, truncation)
        info, mask = self.info, self.info.has_attention_mask
        dtypes = {i.name: i.numpy_dtype for i in info.inputs}
        plan = plan_chunks([len(ids) for ids in encoded["input_ids"]], self.rows_per_request, uniform_length=not mask)
        chunks = [pad_chunk(encoded, rows, self.encoder.pad_values, dtypes, attention_mask=mask) for rows in plan]
        deadline = Deadline(self.options.timeout_s if timeout_s is ... else timeout_s)

        def results(answers: list) -> Classification | list[Classification]:
            rows = reorder(chunks, answers, len(texts))
            out = [build_result(info.problem_type, info.labels, *row, top_k=top_k, threshold=threshold) for row in rows]
            return out[0] if single else out

        return [self.infer(chunk, deadline) for chunk in chunks], results
