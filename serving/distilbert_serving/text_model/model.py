"""The text model (Triton backend ``distilbert_text``): raw text in, the token model's classification out.

One ``execute`` is one dynamic batch of text requests, in stages: decode each request's tensors
and parameters → validate them into text rows (their sizes first) → tokenize the rows of all
requests in one batched call, each long text read only as far as the model can use it → forward
them to the token model (BLS), split only at its max_batch_size → encode one response per request
(logits, probabilities, top label). Each stage keeps one entry per request, its data or the error
that ends it, so a malformed request, or one whose rows the token model failed, gets its own error
while the rest is served. The logic lives in this package's modules.

A request whose caller cancelled it, or whose deadline passed, is answered ``CANCELLED`` before
tokenization (``text_requests_dropped_total``); each call to the token model carries the latest
deadline of its requests, so that model can drop a chunk nobody will wait for.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import triton_python_backend_utils as pb_utils

# Rows are few and short: Rust-side threads would only contend with the token model's torch threads.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from ..contract import ATTENTION_MASK, INPUT_IDS, LABEL, TEXT, TEXT_PAIR, TOKEN_OUTPUTS  # noqa: E402
from ..outcomes import Counters, Dropped, drop_abandoned, error_response, time_left_s  # noqa: E402
from .batching import all_rows, chunk_deadlines, split_answers  # noqa: E402
from .encoding import TextEncoder, load_tokenizer, pad_rows, tokenize_requests, top_labels, warm_up  # noqa: E402
from .metrics import COUNTERS  # noqa: E402
from .relay import deadline_arguments, relayed_error  # noqa: E402
from .settings import check_checkpoint_facts, read_max_batch_size, read_text_settings  # noqa: E402
from .validation import InvalidText, parse_options, request_items  # noqa: E402


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        self.settings = read_text_settings(json.loads(args["model_config"]))
        repository = Path(args["model_repository"]).parent
        # Facts of the token model, read where it keeps them (and checked), not copied into our config.
        self.chunk_rows = read_max_batch_size(repository / self.settings.token_model / "config.pbtxt")
        folder = repository / self.settings.tokenizer
        check_checkpoint_facts(self.settings, folder)
        self.tokenizer = load_tokenizer(folder)
        self.pad_id = int(self.tokenizer.pad_token_id or 0)
        labels = {"model": args["model_name"], "version": args["model_version"]}
        self.metrics = Counters(pb_utils.MetricFamily, labels, COUNTERS)
        self.encoder = TextEncoder(self.tokenizer, self.settings.max_sequence_length)
        warm_up(self.encoder, self.settings.defaults)
        reading = "each text only as far as the model reads it" if self.encoder.cutter else "whole texts"
        pb_utils.Logger.log_info(
            f"{args['model_name']}: tokenizer {folder} ({reading}), classifier {self.settings.token_model} "
            f"({self.chunk_rows} rows per call), {self.settings.defaults}, {self.settings.limits}"
        )

    async def execute(self, requests):
        wanted = [self.drop_abandoned(request) for request in requests]
        decoded = [self.decode(entry) for entry in wanted]
        items = [self.validate(entry) for entry in decoded]
        rows = self.tokenize(items)
        now = time.time()  # each caller's deadline goes on to the token model with its rows
        deadlines = [None if (left := time_left_s(request, now)) is None else now + left for request in requests]
        outputs = await self.forward(rows, deadlines)
        return [self.encode(entry) for entry in outputs]

    def drop_abandoned(self, request):
        """The request, or ``Dropped`` when its caller no longer waits (cancelled, or past its deadline)."""
        # Deadline stamps only: asking Triton about cancellation is a round trip per request, and Triton's
        # queue drops cancelled requests itself (as does the token model before a long forward).
        return drop_abandoned(request, self.metrics["dropped"], ask_triton=False)

    def decode(self, request):
        """The request's ``text`` and ``text_pair`` arrays (None when absent) and its parameters."""
        if isinstance(request, Dropped):
            return request
        text, pair = (pb_utils.get_input_tensor_by_name(request, name) for name in (TEXT, TEXT_PAIR))
        parameters = json.loads(request.parameters() or "{}")
        return (None if text is None else text.as_numpy(), None if pair is None else pair.as_numpy(), parameters)

    def validate(self, decoded):
        """The request's ``TextItem`` rows (``validation``), or its error."""
        if isinstance(decoded, Dropped):
            return decoded
        text, pair, parameters = decoded
        try:
            return request_items(text, pair, parse_options(parameters, self.settings.defaults), self.settings.limits)
        except InvalidText as error:
            return error

    def tokenize(self, entries: list) -> list:
        """Each request's token rows, or its error: all rows in one batched tokenizer call per option group."""
        started = time.perf_counter()
        tokenized = tokenize_requests(self.encoder, entries)
        rows = sum(len(entry) for entry in entries if isinstance(entry, list))
        if rows:
            self.metrics["calls"].increment(1)
            self.metrics["rows"].increment(rows)
            self.metrics["duration_us"].increment((time.perf_counter() - started) * 1e6)
        return tokenized

    async def forward(self, entries: list, deadlines: list) -> list:
        """Each request's (logits, probabilities), or its error.

        All rows go to the token model in as few requests as its max_batch_size allows, all in flight
        at once: one BLS request per text request would trickle in an IPC round trip apart and start
        forwards on the first few. Merging costs no compute: the token model re-plans by length.
        """
        rows, step = all_rows(entries), self.chunk_rows
        if not rows:
            return entries
        chunks = zip(range(0, len(rows), step), chunk_deadlines(entries, deadlines, step), strict=True)
        answers = await asyncio.gather(*(self.classify(rows[i : i + step], deadline) for i, deadline in chunks))
        return split_answers(entries, answers, step)

    def encode(self, outputs):
        """One response: the token model's outputs and the top label's name, or the request's error."""
        error = error_response(pb_utils, outputs, InvalidText)
        if error is not None:
            return error
        labels = top_labels(outputs[0], self.settings.labels)
        tensors = [pb_utils.Tensor(name, array) for name, array in zip(TOKEN_OUTPUTS, outputs, strict=True)]
        return pb_utils.InferenceResponse(output_tensors=[*tensors, pb_utils.Tensor(LABEL, labels)])

    async def classify(self, rows: list[list[int]], deadline: float | None):
        """(logits, probabilities) of the token model for ``rows``, or the ``TritonError`` it gave."""
        ids, mask = pad_rows(rows, self.pad_id)
        inputs = [pb_utils.Tensor(INPUT_IDS, ids)]
        if mask is not None:
            inputs.append(pb_utils.Tensor(ATTENTION_MASK, mask))
        request = pb_utils.InferenceRequest(
            model_name=self.settings.token_model,
            inputs=inputs,
            requested_output_names=list(TOKEN_OUTPUTS),
            **deadline_arguments(deadline, time.time()),
        )
        model = self.settings.token_model
        try:
            response = await request.async_exec()
        except Exception as error:  # the call itself failed: the server is stopping, or the queue is full
            return relayed_error(pb_utils, model, str(error))
        if response.has_error():
            error = response.error()
            return relayed_error(pb_utils, model, error.message(), getattr(error, "code", lambda: None)())
        return tuple(pb_utils.get_output_tensor_by_name(response, name).as_numpy() for name in TOKEN_OUTPUTS)

    def finalize(self) -> None:
        self.metrics.close()
        self.tokenizer = self.encoder = None
