"""The asyncio client, on ``tritonclient.grpc.aio``; same results as the blocking one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import overload

import tritonclient.grpc.aio as aiogrpcclient

from ._core import Core, connection_options, validate_options
from ._errors import ClassifierError, ModelNotReadyError, ServerUnavailableError, mapped_errors
from ._model_info import ModelInfo
from ._results import Classification
from ._retry import Deadline, RetryPolicy
from ._tokenize import Truncation, load_tokenizer

__all__ = ["AsyncClassifier"]

_POLL_S = 0.25


class AsyncClassifier:
    """``Classifier`` for asyncio code: the same arguments, results and errors.

    ::

        async with AsyncClassifier("localhost:8001", tokenizer="path/to/checkpoint") as classifier:
            results = await classifier.classify(["I love this movie", "I hate it"])

    The tokenizer is loaded when the object is created; the server is first contacted on
    ``async with`` (or ``await connect()``), which reads the model config and checks the
    tokenizer against it. Tokenization runs in a worker thread, off the event loop.
    """

    def __init__(
        self,
        url: str,
        tokenizer,
        *,
        model: str = "distilbert_classifier",
        model_version: str = "",
        timeout_s: float | None = 60.0,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen, so one shared default is safe
        max_concurrency: int = 4,
        rows_per_request: int | None = None,
        ready_timeout_s: float | None = None,
        root_certificates: str | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1; got {max_concurrency}")
        self.url = url
        self.model_name = model
        self.model_version = model_version
        self.timeout_s = timeout_s
        self.retry = retry
        self.max_concurrency = max_concurrency
        self._tokenizer = load_tokenizer(tokenizer)
        self._rows_per_request = rows_per_request
        self._ready_timeout_s = ready_timeout_s
        self._connection = connection_options(root_certificates)
        self._client: aiogrpcclient.InferenceServerClient | None = None
        self._core: Core | None = None

    @property
    def model(self) -> ModelInfo:
        """The served model as read from the server (after ``connect``)."""
        if self._core is None:
            raise RuntimeError("not connected: use 'async with' or 'await connect()' first")
        return self._core.info

    async def __aenter__(self) -> AsyncClassifier:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    async def connect(self) -> None:
        """Read the model config from the server and check the tokenizer against it."""
        if self._core is not None:
            return
        if self._client is None:
            # Created here, inside the running loop, which the gRPC channel binds to.
            self._client = aiogrpcclient.InferenceServerClient(self.url, **self._connection)
        if self._ready_timeout_s is not None:
            await self.wait_until_ready(self._ready_timeout_s)
        client = self._client
        config = await self._call(
            lambda timeout: client.get_model_config(
                self.model_name, self.model_version, as_json=True, client_timeout=timeout
            ),
            Deadline(self.timeout_s),
        )
        self._core = Core(ModelInfo.from_config(config), self._tokenizer, self._rows_per_request)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def wait_until_ready(self, timeout_s: float) -> None:
        """Return once the server and the model are ready; else as ``Classifier.wait_until_ready``."""
        if self._client is None:
            self._client = aiogrpcclient.InferenceServerClient(self.url, **self._connection)
        end = time.monotonic() + timeout_s
        server_ready, last = False, "no answer"
        while True:
            try:
                with mapped_errors():
                    server_ready = await self._client.is_server_ready(client_timeout=1.0)
                    if server_ready and await self._client.is_model_ready(
                        self.model_name, self.model_version, client_timeout=1.0
                    ):
                        return
            except ClassifierError as error:
                last = error.message
            left = end - time.monotonic()
            if left <= 0:
                break
            await asyncio.sleep(min(_POLL_S, left))
        if server_ready:
            raise ModelNotReadyError(f"model {self.model_name!r} at {self.url} not ready after {timeout_s:g} s")
        raise ServerUnavailableError(f"server at {self.url} not ready after {timeout_s:g} s: {last}")

    @overload
    async def classify(
        self,
        text_or_texts: str,
        *,
        text_pair: str | None = None,
        top_k: int | None = None,
        threshold: float = 0.5,
        truncation: Truncation = True,
        timeout_s: float | None = ...,
    ) -> Classification: ...

    @overload
    async def classify(
        self,
        text_or_texts: Sequence[str],
        *,
        text_pair: Sequence[str] | None = None,
        top_k: int | None = None,
        threshold: float = 0.5,
        truncation: Truncation = True,
        timeout_s: float | None = ...,
    ) -> list[Classification]: ...

    async def classify(
        self,
        text_or_texts,
        *,
        text_pair=None,
        top_k=None,
        threshold=0.5,
        truncation=True,
        timeout_s=...,
    ):
        """Classify one text or a sequence; see ``Classifier.classify``."""
        validate_options(top_k, threshold)
        await self.connect()
        core = self._core
        prepared = await asyncio.to_thread(core.prepare, text_or_texts, text_pair, truncation)
        if not prepared.chunks:
            return []
        deadline = Deadline(self.timeout_s if timeout_s is ... else timeout_s)
        limit = asyncio.Semaphore(self.max_concurrency)

        async def infer(chunk) -> list:
            async with limit:
                inputs, outputs = core.infer_inputs(chunk), core.requested_outputs()
                result = await self._call(
                    lambda timeout: self._client.infer(
                        self.model_name, inputs, self.model_version, outputs=outputs, client_timeout=timeout
                    ),
                    deadline,
                )
                return core.answer_rows(result)

        tasks = [asyncio.ensure_future(infer(chunk)) for chunk in prepared.chunks]
        try:
            # The first failure ends the call; the requests still queued are cancelled.
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in tasks:
                if not task.done():
                    task.cancel()
        for task in tasks:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()
        return core.results(prepared, [task.result() for task in tasks], top_k, threshold)

    async def _call(self, rpc, deadline: Deadline):
        """One RPC under the call's deadline, retried while the server is unavailable."""
        retry = 0
        while True:
            try:
                with mapped_errors():
                    return await rpc(deadline.remaining_s())
            except ServerUnavailableError:
                retry += 1
                wait = self.retry.backoff_s(retry)
                if retry >= self.retry.attempts or not deadline.allows_wait(wait):
                    raise
                await asyncio.sleep(wait)
