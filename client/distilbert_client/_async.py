"""The asyncio client: the core's flows driven with ``tritonclient.grpc.aio`` and ``asyncio.sleep``."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import overload

import tritonclient.grpc.aio as aiogrpcclient

from ._core import ClientBase, Flow, Sleep, validate_options
from ._results import Classification
from ._tokenize import Truncation

__all__ = ["AsyncClassifier"]


class AsyncClassifier(ClientBase):
    """``Classifier`` for asyncio code: the same arguments, results and errors.

    ::

        async with AsyncClassifier("localhost:8001", tokenizer="path/to/checkpoint") as classifier:
            results = await classifier.classify(["I love this movie", "I hate it"])

    The tokenizer is loaded when the object is created; the server is first contacted on
    ``async with`` (or ``await connect()``), which reads the model config and checks the
    tokenizer against it. Tokenization runs in a worker thread, off the event loop.
    """

    _client: aiogrpcclient.InferenceServerClient | None = None

    async def __aenter__(self) -> AsyncClassifier:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    async def connect(self) -> None:
        """Read the model config from the server and check the tokenizer against it."""
        if self._core.info is None:
            await self._run(self._core.connect())

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def wait_until_ready(self, timeout_s: float) -> None:
        """Return once the server and the model are ready; else as ``Classifier.wait_until_ready``."""
        await self._run(self._core.wait_until_ready(timeout_s))

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
        self, text_or_texts, *, text_pair=None, top_k=None, threshold=0.5, truncation=True, timeout_s=...
    ):
        """Classify one text or a sequence; see ``Classifier.classify``."""
        validate_options(top_k, threshold)
        await self.connect()
        core = self._core
        prepared = await asyncio.to_thread(core.prepare, text_or_texts, text_pair, truncation)
        if not prepared.chunks:
            return []
        deadline = core.deadline(timeout_s)
        limit = asyncio.Semaphore(self.options.max_concurrency)

        async def infer(chunk) -> list:
            async with limit:
                return await self._run(core.infer(chunk, deadline))

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

    async def _run(self, flow: Flow):
        """Drive ``flow`` to its result: await its calls on this client, sleep its pauses."""
        if self._client is None:
            # Created here, inside the running loop, which the gRPC channel binds to.
            self._client = aiogrpcclient.InferenceServerClient(self.options.url, **self.options.channel())
        answer, error = None, None
        while True:
            try:
                step = flow.send(answer) if error is None else flow.throw(error)
            except StopIteration as done:
                return done.value
            answer, error = None, None
            if isinstance(step, Sleep):
                await asyncio.sleep(step.seconds)
                continue
            try:
                answer = await getattr(self._client, step.method)(**step.kwargs)
            except Exception as raised:  # the flow maps it and decides: retry or raise
                error = raised
