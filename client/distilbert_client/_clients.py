"""The shells over the core: ``Classifier`` drives its flows blocking, ``AsyncClassifier`` with asyncio."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Coroutine, Sequence
from dataclasses import fields
from operator import attrgetter
from typing import Any, Generic, TypeVar, overload

import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aiogrpcclient

from ._core import ClientOptions, Core, Flow, LoadBalancing, Sleep, validate_options
from ._model_info import ModelInfo
from ._results import Classification
from ._retry import RetryPolicy
from ._tokenize import Truncation, load_tokenizer

# What ``classify`` gives for one text and for a sequence: results, or in ``AsyncClassifier`` coroutines of them.
One = TypeVar("One")
Many = TypeVar("Many")


class ClientBase(Generic[One, Many]):
    """The constructor (its arguments documented on ``Classifier``) and the methods of both shells."""

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
        load_balancing: LoadBalancing = "pick_first",
    ) -> None:
        arguments = locals()  # all but the tokenizer are ClientOptions' fields
        self.options = ClientOptions(**{field.name: arguments[field.name] for field in fields(ClientOptions)})
        self._core = Core(self.options, load_tokenizer(tokenizer))
        self._start()

    def _start(self) -> None:
        """What the shell does once constructed; the blocking client connects."""

    # The attributes of earlier versions, as read-only views of ``options``.
    url, model_name, model_version, timeout_s, retry, max_concurrency = (
        property(attrgetter(f"options.{name}"))
        for name in ("url", "model", "model_version", "timeout_s", "retry", "max_concurrency")
    )

    @property
    def model(self) -> ModelInfo:
        """The served model as read from the server: labels, problem type, limits."""
        if self._core.info is None:
            raise RuntimeError("not connected: use 'async with' or 'await connect()' first")
        return self._core.info

    def wait_until_ready(self, timeout_s: float):
        """Return once server and model are ready, else raise ``ServerUnavailableError`` or ``ModelNotReadyError``."""
        return self._run(self._core.wait_until_ready(timeout_s))

    @overload
    def classify(
        self,
        text_or_texts: str,
        *,
        text_pair: str | None = None,
        top_k: int | None = None,
        threshold: float = 0.5,
        truncation: Truncation = True,
        timeout_s: float | None = ...,
    ) -> One: ...

    @overload
    def classify(
        self,
        text_or_texts: Sequence[str],
        *,
        text_pair: Sequence[str] | None = None,
        top_k: int | None = None,
        threshold: float = 0.5,
        truncation: Truncation = True,
        timeout_s: float | None = ...,
    ) -> Many: ...

    def classify(self, text_or_texts, *, text_pair=None, top_k=None, threshold=0.5, truncation=True, timeout_s=...):
        """Classify a text (→ ``Classification``) or a sequence (→ list, in input order); ``AsyncClassifier``: awaited.

        Args:
            text_or_texts: a str, or a sequence of them.
            text_pair: the second text of each pair (tokenized as ``[CLS] text [SEP] pair [SEP]``).
            top_k: how many labels ``result.top`` holds, best first; None for all.
            threshold: multi-label models: the score from which a label is predicted.
            truncation: texts longer than the model's maximum are cut on the tokenizer's side (True) or
                that side ("right", "left"); False sends them whole, for the server to reject.
            timeout_s: this call's deadline; default the client's ``timeout_s``.
        """
        return self._classify(text_or_texts, text_pair, top_k, threshold, truncation, timeout_s)


class Classifier(ClientBase[Classification, list[Classification]]):
    """Classify texts with a DistilBERT classifier served by Triton, over gRPC.

    ::

        with Classifier("localhost:8001", tokenizer="path/to/checkpoint") as classifier:
            result = classifier.classify("I love this movie")
            print(result.label, result.score)

    Construction reads the model's config (problem type, labels, inputs, limits) and checks the
    tokenizer against it: ``IncompatibleModelError`` if they disagree, ``ServerUnavailableError`` or
    ``ModelNotReadyError`` if the server cannot say (pass ``ready_timeout_s`` to wait).

    Args:
        url: ``host:port``, or any gRPC target: ``dns:///name.namespace.svc:8001``, ``ipv4:10.0.0.1:8001,10.0.0.2:8001``
        tokenizer: the served checkpoint's tokenizer: a folder, a hub id, or a loaded ``transformers`` tokenizer.
        model: the model's name in the server's repository.
        model_version: a version number as a string; "" lets the server choose.
        timeout_s: the default deadline of one ``classify`` call, retries included; None for none. Each
            request carries what is left of it to the server, which can then drop one nobody waits for.
        retry: retries of requests that find the server unavailable or the model reloading.
        max_concurrency: requests in flight at once for one call, for the server's dynamic batcher to merge.
        rows_per_request: texts per request, at most the server's ``max_batch_size`` (the default).
        ready_timeout_s: wait up to this long for the server and model to be ready; None fails at once.
        root_certificates: the PEM file of the CA that signed the server's certificate: TLS. None: plaintext.
        load_balancing: "pick_first" (gRPC's default): every request to one address of the url;
            "round_robin": spread over all of them, e.g. the pods of a Kubernetes headless Service.
            gRPC re-resolves the name when a connection fails, not on a schedule.
    """

    def _start(self) -> None:
        self._client = grpcclient.InferenceServerClient(self.options.url, **self.options.channel())
        # Threads start on first use; a one-request call never uses them.
        self._pool = concurrent.futures.ThreadPoolExecutor(self.options.max_concurrency, thread_name_prefix="classify")
        try:
            self._run(self._core.connect())
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Classifier:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Stop the threads and close the connection."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._client.close()

    def _classify(self, text_or_texts, text_pair, top_k, threshold, truncation, timeout_s):
        validate_options(top_k, threshold)
        flows, results = self._core.classify(text_or_texts, text_pair, top_k, threshold, truncation, timeout_s)
        if flows and self._pool is None:
            raise RuntimeError("the classifier is closed")
        if len(flows) <= 1 or self.options.max_concurrency == 1:
            return results([self._run(flow) for flow in flows])
        # At most max_concurrency requests at once; the first error cancels those not started yet.
        futures = [self._pool.submit(self._run, flow) for flow in flows]
        done, pending = concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
        # Any still pending means one done has failed: its result() raises before a short list reaches results().
        return results([future.result() for future in futures if future in done])

    def _run(self, flow: Flow):
        """Drive ``flow`` to its result: make its calls on this client, sleep its pauses."""
        reply = None
        try:
            while True:
                step = flow.throw(reply) if isinstance(reply, Exception) else flow.send(reply)
                try:
                    reply = time.sleep(step.seconds) if isinstance(step, Sleep) else step.call(self._client)
                except Exception as error:  # thrown into the flow, which maps it, then retries or raises
                    reply = error
        except StopIteration as done:
            return done.value


class AsyncClassifier(ClientBase[Coroutine[Any, Any, Classification], Coroutine[Any, Any, list[Classification]]]):
    """``Classifier`` for asyncio code: the same arguments, results and errors.

    The tokenizer is loaded at once; the server is first contacted by ``async with`` (or ``await connect()``),
    which reads the model config and checks the tokenizer against it. Tokenization runs off the event loop.
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
        """Close the connection."""
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def _classify(self, text_or_texts, text_pair, top_k, threshold, truncation, timeout_s):
        validate_options(top_k, threshold)
        await self.connect()
        call = (text_or_texts, text_pair, top_k, threshold, truncation, timeout_s)
        flows, results = await asyncio.to_thread(self._core.classify, *call)
        limit = asyncio.Semaphore(self.options.max_concurrency)

        async def run(flow) -> list:
            async with limit:
                return await self._run(flow)

        tasks = [asyncio.ensure_future(run(flow)) for flow in flows]
        try:
            return results(await asyncio.gather(*tasks))
        finally:  # the first failure (or this call's cancellation) ends the call: cancel the requests still queued
            for task in tasks:
                task.cancel()

    async def _run(self, flow: Flow):
        """Drive ``flow`` to its result: await its calls on this client, sleep its pauses."""
        if self._client is None:
            # Created here, inside the running loop, which the gRPC channel binds to.
            self._client = aiogrpcclient.InferenceServerClient(self.options.url, **self.options.channel())
        reply = None
        try:
            while True:
                step = flow.throw(reply) if isinstance(reply, Exception) else flow.send(reply)
                try:
                    reply = await (asyncio.sleep(step.seconds) if isinstance(step, Sleep) else step.call(self._client))
                except Exception as error:
                    reply = error
        except StopIteration as done:
            return done.value
