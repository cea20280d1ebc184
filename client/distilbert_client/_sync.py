"""The blocking client, on ``tritonclient.grpc``."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Sequence
from typing import overload

import tritonclient.grpc as grpcclient

from ._core import Core, connection_options, validate_options
from ._errors import ClassifierError, ModelNotReadyError, ServerUnavailableError, mapped_errors
from ._model_info import ModelInfo
from ._results import Classification
from ._retry import Deadline, RetryPolicy
from ._tokenize import Truncation, load_tokenizer

__all__ = ["Classifier"]

_POLL_S = 0.25


class Classifier:
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
        url: the server's gRPC address, ``host:port``.
        tokenizer: the served checkpoint's tokenizer: a folder, a hub id, or a loaded
            ``transformers`` tokenizer.
        model: the model's name in the server's repository.
        model_version: a version number as a string; "" lets the server choose.
        timeout_s: the default deadline of one ``classify`` call, all of its requests and
            retries included; None for none.
        retry: retries of requests that find the server unavailable.
        max_concurrency: requests in flight at once for one call (a long list is split into
            several; concurrent requests let the server's dynamic batcher merge them).
        rows_per_request: texts per request, at most the server's ``max_batch_size``
            (the default).
        ready_timeout_s: wait up to this long for the server and model to be ready before
            reading the config; None fails at once.
        root_certificates: a PEM file of the CA that signed the server's certificate:
            connect over TLS (``build/launch.py --grpc-tls-cert``). None: plaintext.
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
        self._client = grpcclient.InferenceServerClient(url, **connection_options(root_certificates))
        # Threads start on first use; a one-request call never uses them.
        self._pool: concurrent.futures.ThreadPoolExecutor | None = concurrent.futures.ThreadPoolExecutor(
            max_concurrency, thread_name_prefix="classify"
        )
        try:
            tokenizer = load_tokenizer(tokenizer)
            if ready_timeout_s is not None:
                self.wait_until_ready(ready_timeout_s)
            config = self._call(
                lambda timeout: self._client.get_model_config(
                    model, model_version, as_json=True, client_timeout=timeout
                ),
                Deadline(timeout_s),
            )
            self._core = Core(ModelInfo.from_config(config), tokenizer, rows_per_request)
        except BaseException:
            self.close()
            raise

    @property
    def model(self) -> ModelInfo:
        """The served model as read from the server: labels, problem type, limits."""
        return self._core.info

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
        end = time.monotonic() + timeout_s
        server_ready, last = False, "no answer"
        while True:
            try:
                with mapped_errors():
                    server_ready = self._client.is_server_ready(client_timeout=1.0)
                    if server_ready and self._client.is_model_ready(
                        self.model_name, self.model_version, client_timeout=1.0
                    ):
                        return
            except ClassifierError as error:
                last = error.message
            left = end - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(_POLL_S, left))
        if server_ready:
            raise ModelNotReadyError(f"model {self.model_name!r} at {self.url} not ready after {timeout_s:g} s")
        raise ServerUnavailableError(f"server at {self.url} not ready after {timeout_s:g} s: {last}")

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

    def classify(
        self,
        text_or_texts,
        *,
        text_pair=None,
        top_k=None,
        threshold=0.5,
        truncation=True,
        timeout_s=...,
    ):
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
        deadline = Deadline(self.timeout_s if timeout_s is ... else timeout_s)
        answers = self._map(lambda chunk: self._infer(chunk, deadline), prepared.chunks)
        return self._core.results(prepared, answers, top_k, threshold)

    def _infer(self, chunk, deadline: Deadline) -> list:
        inputs, outputs = self._core.infer_inputs(chunk), self._core.requested_outputs()
        result = self._call(
            lambda timeout: self._client.infer(
                self.model_name, inputs, self.model_version, outputs=outputs, client_timeout=timeout
            ),
            deadline,
        )
        return self._core.answer_rows(result)

    def _map(self, function, chunks) -> list:
        """``function`` over chunks, at most ``max_concurrency`` at once; the first error stops the rest."""
        if self._pool is None:
            raise RuntimeError("the classifier is closed")
        if len(chunks) == 1 or self.max_concurrency == 1:
            return [function(chunk) for chunk in chunks]
        futures = [self._pool.submit(function, chunk) for chunk in chunks]
        done, pending = concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
        for future in futures:
            if future in done and future.exception() is not None:
                raise future.exception()
        return [future.result() for future in futures]

    def _call(self, rpc, deadline: Deadline):
        """One RPC under the call's deadline, retried while the server is unavailable."""
        retry = 0
        while True:
            try:
                with mapped_errors():
                    return rpc(deadline.remaining_s())
            except ServerUnavailableError:
                retry += 1
                wait = self.retry.backoff_s(retry)
                if retry >= self.retry.attempts or not deadline.allows_wait(wait):
                    raise
                time.sleep(wait)
