"""Triton Python-backend model: raw text in, the token model's classification out.

One ``execute`` is one dynamic batch of text requests. The stages:

    decode + validate each request (UTF-8, not empty, options)  →  tokenize the rows of all
    requests in one batched fast-tokenizer call  →  one BLS request to the token model with the
    rows of all valid requests (split only at its max_batch_size)  →  logits, probabilities and
    the top label's name, split back into one response per request

A malformed request gets its own error response; the rest of the batch is served.
The logic itself lives in ``text_serving`` (importable and tested without Triton).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, str(Path(__file__).parent))
# Rows are few and short: Rust-side threads would only contend with the token model's torch threads.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from text_serving.encoding import TooLong, encode_items, pad_rows, top_labels  # noqa: E402
from text_serving.settings import read_text_settings  # noqa: E402
from text_serving.validation import InvalidText, TextItem, TokenizeOptions, parse_options, request_items  # noqa: E402

OUTPUTS = ("logits", "probabilities")
WARMUP = (
    ("The service answered every well-formed request.", None),
    ("Is this a question?", "A text pair is tokenized as one sequence with two segments."),
)


def invalid_argument(message: str):
    code = getattr(pb_utils.TritonError, "INVALID_ARG", None)
    return pb_utils.TritonError(message, code) if code is not None else pb_utils.TritonError(message)


def load_tokenizer(folder: Path):
    from transformers import AutoTokenizer
    from transformers.utils import logging

    # "sequence longer than the maximum" warnings: over-long rows are answered with errors instead.
    logging.set_verbosity_error()
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False, local_files_only=True)
    if not tokenizer.is_fast:
        raise pb_utils.TritonModelException(f"{folder}: the tokenizer is not a fast (Rust) tokenizer")
    return tokenizer


def check_checkpoint_facts(folder: Path, settings) -> None:
    """The published labels and maximum length are those of the token model's checkpoint."""
    config_file = folder / "config.json"
    if not config_file.exists():
        return
    config = json.loads(config_file.read_text())
    labels = tuple(config["id2label"][str(i)] for i in range(len(config["id2label"])))
    found = {"labels": labels, "max_sequence_length": int(config["max_position_embeddings"])}
    published = {"labels": settings.labels, "max_sequence_length": settings.max_sequence_length}
    if found != published:
        raise pb_utils.TritonModelException(
            f"config.pbtxt publishes {published} but {config_file} has {found}; re-run build/export.py"
        )


class TextMetrics:
    """Prometheus counters: how many rows were tokenized and how long tokenization took."""

    def __init__(self, labels: dict[str, str]):
        self.families = []

        def counter(name: str, description: str):
            family = pb_utils.MetricFamily(name=name, description=description, kind=pb_utils.MetricFamily.COUNTER)
            self.families.append(family)
            return family.Metric(labels=labels)

        self.calls = counter("text_tokenize_calls_total", "Executes whose rows were tokenized together")
        self.rows = counter("text_tokenize_rows_total", "Texts (or pairs) tokenized")
        self.duration_us = counter("text_tokenize_duration_us_total", "Time spent tokenizing, microseconds")


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        self.settings = read_text_settings(json.loads(args["model_config"]))
        repository = Path(args["model_repository"]).parent
        folder = repository / self.settings.tokenizer
        check_checkpoint_facts(folder, self.settings)
        self.tokenizer = load_tokenizer(folder)
        self.pad_id = int(self.tokenizer.pad_token_id or 0)
        self.defaults = TokenizeOptions(self.settings.truncation, self.settings.truncation_side)
        self.metrics = TextMetrics({"model": args["model_name"], "version": args["model_version"]})
        self.warm_up()
        pb_utils.Logger.log_info(
            f"{args['model_name']}: tokenizer {folder}, classifier {self.settings.classifier_model}, "
            f"truncation {self.settings.truncation} ({self.settings.truncation_side})"
        )

    def warm_up(self) -> None:
        """Run the tokenizer on each path once, so the first request does not pay for it.

        Not a ``model_warmup`` in config.pbtxt: Triton refuses every inference, BLS included,
        until the server is ready, so a warmup that reaches the token model fails the load.
        The token model warms its own forward passes.
        """
        options = (self.defaults, TokenizeOptions(True, "left"), TokenizeOptions(False, "right"))
        items = [TextItem(text, pair, o) for text, pair in WARMUP for o in options]
        encode_items(self.tokenizer, items * 4, self.settings.max_sequence_length)

    async def execute(self, requests):
        responses: list = [None] * len(requests)
        items, owners = [], []
        for index, request in enumerate(requests):
            try:
                rows = self.decode(request)
            except InvalidText as error:
                responses[index] = pb_utils.InferenceResponse(error=invalid_argument(str(error)))
                continue
            owners.append((index, len(items), len(rows)))
            items.extend(rows)

        started = time.perf_counter()
        encoded = encode_items(self.tokenizer, items, self.settings.max_sequence_length) if items else []
        if items:
            self.metrics.calls.increment(1)
            self.metrics.rows.increment(len(items))
            self.metrics.duration_us.increment((time.perf_counter() - started) * 1e6)

        valid, rows = [], []
        for index, start, count in owners:
            encoded_rows = encoded[start : start + count]
            too_long = next(((r, e) for r, e in enumerate(encoded_rows) if isinstance(e, TooLong)), None)
            if too_long is not None:
                responses[index] = pb_utils.InferenceResponse(error=invalid_argument(too_long[1].message(too_long[0])))
                continue
            valid.append((index, len(rows), count))
            rows.extend(encoded_rows)
        if not rows:
            return responses

        # The rows of all requests go to the token model together, as few requests as its
        # max_batch_size allows, all in flight at once. One BLS request per text request would
        # trickle in one IPC round trip apart, and the token model's short queue delay would
        # start a forward on the first few of them. The token model trims the padding and
        # re-plans forwards by length, so merging costs no compute.
        step = self.settings.classifier_max_batch_size
        answers = await asyncio.gather(*(self.classify(rows[i : i + step]) for i in range(0, len(rows), step)))
        failure = next((answer for answer in answers if isinstance(answer, pb_utils.TritonError)), None)
        if failure is not None:
            for index, _, _ in valid:
                responses[index] = pb_utils.InferenceResponse(error=failure)
            return responses
        logits = np.concatenate([answer[0] for answer in answers])
        probabilities = np.concatenate([answer[1] for answer in answers])
        labels = top_labels(logits, self.settings.labels)
        for index, start, count in valid:
            part = slice(start, start + count)
            responses[index] = pb_utils.InferenceResponse(
                output_tensors=[
                    pb_utils.Tensor("logits", logits[part]),
                    pb_utils.Tensor("probabilities", probabilities[part]),
                    pb_utils.Tensor("label", labels[part]),
                ]
            )
        return responses

    def decode(self, request):
        parameters = json.loads(request.parameters() or "{}")
        options = parse_options(parameters, self.defaults)
        text = pb_utils.get_input_tensor_by_name(request, "text")
        pair = pb_utils.get_input_tensor_by_name(request, "text_pair")
        return request_items(
            None if text is None else text.as_numpy(), None if pair is None else pair.as_numpy(), options
        )

    async def classify(self, rows: list[list[int]]):
        """(logits, probabilities) of the token model for ``rows``, or the ``TritonError`` it gave."""
        ids, mask = pad_rows(rows, self.pad_id)
        inputs = [pb_utils.Tensor("input_ids", ids)]
        if mask is not None:
            inputs.append(pb_utils.Tensor("attention_mask", mask))
        request = pb_utils.InferenceRequest(
            model_name=self.settings.classifier_model, inputs=inputs, requested_output_names=list(OUTPUTS)
        )
        try:
            response = await request.async_exec()
        except Exception as error:  # the call itself failed (e.g. the server is stopping)
            return pb_utils.TritonError(f"{self.settings.classifier_model}: {error}")
        if response.has_error():
            # Keep the token model's status (e.g. UNAVAILABLE when its queue is full) for the caller.
            error = response.error()
            message = f"{self.settings.classifier_model}: {error.message()}"
            return (
                pb_utils.TritonError(message, error.code()) if hasattr(error, "code") else pb_utils.TritonError(message)
            )
        return tuple(pb_utils.get_output_tensor_by_name(response, name).as_numpy() for name in OUTPUTS)

    def finalize(self) -> None:
        self.tokenizer = None
