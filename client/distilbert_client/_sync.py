"""The blocking client: the core's flows driven with ``tritonclient.grpc`` and ``time.sleep``."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Sequence
from typing import overload

import tritonclient.grpc as grpcclient

from ._core import ClientBase, Flow, Sleep, validate_options
from ._results import Classification
from ._tokenize import Truncation

__all__ = ["Classifier"]


class Classifier(ClientBase):
    """Classify texts with a DistilBERT classifier served by Triton, over gRPC.

    ::

        with Classifier("localhost:8001", tokenizer="path/to/checkpoint") as classifier:
            result = classifier.classify("I love this movie")
            print(result.label, result.score)

    Construction reads the model's config from the server (problem type, labels, input
    names, maximum length, vocabulary size) and checks the tokenizer against it:
    ``IncompatibleModelError`` if they disagree, ``ServerUnavailableError`` or
    ``ModelNotReadyError`` if the server cannot say (pass ``ready_timeout_s`` to wait).

    Args:
        url: the server's gRPC address, ``host:port``; or any gRPC target, such as
            ``dns:///classifier.default.svc:8001`` or ``ipv4:10.0.0.1:8001,10.0.0.2:8001``.
        tokenizer: the served checkpoint's tokenizer: a folder, a hub id, or a loaded
            ``transformers`` tokenizer.
        model: the model's name in the server's repository.
        model_version: a version number as a string; "" lets the server choose.
        timeout_s: the default deadline of one ``classify`` call, all of its requests and
            retries included; None for none. Each request carries what is left of it to the
            server, which can then drop a request nobody waits for.
        retry: retries of requests that find the server unavailable or the model reloading.
        max_concurrency: requests in flight at once for one call (a long list is split into
            several; concurrent requests let the server's dynamic batcher merge them).
        rows_per_request: texts per request, at most the server's ``max_batch_size``
            (the default).
        ready_timeout_s: wait up to this long for the server and model to be ready before
            reading the config; None fails at once.
        root_certificates: a PEM file of the CA that signed the server's certificate:
            connect over TLS (``build/launch.py --grpc-tls-cert``). None: plaintext.
        load_balancing: "pick_first" (gRPC's default) sends every request to one address the
            url resolves to; "round_robin" spreads requests over all of them, e.g. the pods
            behind a Kubernetes headless Service (url ``dns:///name.namespace.svc:8001``).
            gRPC re-resolves the name when a connection fails, not on a schedule.
    """

    def _start(self) -> None:
        self._client = grpcclient.InferenceServerClient(self.options.url, **self.options.channel())
        # Threads start on first use; a one-request call never uses them.
        self._pool: concurrent.futures.ThreadPoolExecutor | None = concurrent.futures.ThreadPoolExecutor(
            self.options.max_concurrency, thread_name_prefix="classify"
        )
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
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._client.close()

    def wait_until_ready(self, timeout_s: float) -> None:
        """Return once the server and the model are ready; raise if not within ``timeout_s``.

        ``ServerUnavailableError`` if the server never answered ready,
        ``ModelNotReadyError`` if it did but the model did not become ready.
        """
        self._run(self._core.wait_until_ready(timeout_s))

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
    ) -> Classification: ...

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
    ) -> list[Classification]: ...

    def classify(self, text_or_texts, *, text_pair=None, top_k=None, threshold=0.5, truncation=True, timeout_s=...):
        """Classify one text (→ ``Classification``) or a sequence (→ list, in input order).

        Args:
            text_pair: the second text of each pair, for sentence-pair classification
                (tokenized as ``[CLS] text [SEP] pair [SEP]``).
            top_k: how many labels ``result.top`` holds, best first; None for all.
            threshold: multi-label models: the score from which a label is predicted.
            truncation: True truncates texts longer than the model's maximum on the
                tokenizer's side, "right" or "left" on that side; False sends them whole
                (the server then rejects them with ``InvalidInputError``).
            timeout_s: this call's deadline; default the client's ``timeout_s``.
        """
        validate_options(top_k, threshold)
        prepared = self._core.prepare(text_or_texts, text_pair, truncation)
        if not prepared.chunks:
            return []
        deadline = self._core.deadline(timeout_s)
        answers = self._map(lambda chunk: self._run(self._core.infer(chunk, deadline)), prepared.chunks)
        return self._core.results(prepared, answers, top_k, threshold)

    def _map(self, function, chunks) -> list:
        """``function`` over chunks, at most ``max_concurrency`` at once; the first error stops the rest."""
        if self._pool is None:
            raise RuntimeError("the classifier is closed")
        if len(chunks) == 1 or self.options.max_concurrency == 1:
            return [function(chunk) for chunk in chunks]
        futures = [self._pool.submit(function, chunk) for chunk in chunks]
        done, pending = concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
        for future in futures:
            if future in done and future.exception() is not None:
                raise future.exception()
        return [future.result() for future in futures]

    def _run(self, flow: Flow):
        """Drive ``flow`` to its result: make its calls on this client, sleep its pauses."""
        answer, error = None, None
        while True:
            try:
                step = flow.send(answer) if error is None else flow.throw(error)
            except StopIteration as done:
                return done.value
            answer, error = None, None
            if isinstance(step, Sleep):
                time.sleep(step.seconds)
                continue
            try:
                answer = getattr(self._client, step.method)(**step.kwargs)
            except Exception as raised:  # the flow maps it and decides: retry or raise
                error = raised
