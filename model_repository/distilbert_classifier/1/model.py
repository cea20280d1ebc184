"""Triton Python-backend model: a HuggingFace DistilBERT sequence classifier.

One ``execute`` is one dynamic batch of requests, each ``[rows, length]`` token ids of
its own length (``allow_ragged_batch``). The stages:

    drop requests nobody waits for any more  →  decode each request's tensors  →  validate them
    into rows  →  forward: one ``classify`` over the rows of all valid requests, split back per
    request  →  encode one response per request

Each stage keeps one entry per request, its data or the error that ends it, so a malformed
request gets its own error response while the rest of the batch is served. The serving logic
itself lives in ``clf_serving`` (importable and tested without Triton).

A request whose caller cancelled it, or whose gRPC deadline passed (gRPC then cancels the call
and Triton the request), is answered ``CANCELLED`` before the forward pass and counted in
``clf_requests_dropped_total``: under overload that is the work to drop first.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
import triton_python_backend_utils as pb_utils

sys.path.insert(0, str(Path(__file__).parent))

from clf_serving.batching import row_spans  # noqa: E402
from clf_serving.deadlines import RowRate, chunk_rows, chunks  # noqa: E402
from clf_serving.engine import ClassifierEngine, torch_threads  # noqa: E402
from clf_serving.scores import scores_from_logits  # noqa: E402
from clf_serving.settings import check_settings, cpu_instances, read_settings  # noqa: E402
from clf_serving.validation import InvalidRequest, validate_request  # noqa: E402


def invalid_argument(message: str):
    code = getattr(pb_utils.TritonError, "INVALID_ARG", None)
    return pb_utils.TritonError(message, code) if code is not None else pb_utils.TritonError(message)


# Why a request was dropped before the forward pass (the ``reason`` label of clf_requests_dropped_total).
DROP_REASONS = ("expired", "cancelled")


def abandoned(request):
    """``Dropped`` (answered CANCELLED) when nobody waits for ``request`` any more, else None.

    Triton marks a request cancelled when its gRPC call is cancelled, which is also what gRPC does
    when the call's deadline passes; a request that carried a ``timeout`` (the client library sends
    its deadline as one) is counted as expired, any other as cancelled.
    """
    if not request.is_cancelled():
        return None
    reason = DROP_REASONS[0] if request.timeout() else DROP_REASONS[1]
    return Dropped(f"request {reason} before its forward pass: its caller no longer waits for the answer", reason)


class Dropped(Exception):
    """A request answered CANCELLED before the forward pass, and why (one of ``DROP_REASONS``)."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def cancelled(message: str):
    code = getattr(pb_utils.TritonError, "CANCELLED", None)
    return pb_utils.TritonError(message, code) if code is not None else pb_utils.TritonError(message)


def instance_device(args: dict) -> torch.device:
    """The GPU of a KIND_GPU instance, else the CPU."""
    if args.get("model_instance_kind") == "GPU":
        if not torch.cuda.is_available():
            raise pb_utils.TritonModelException("instance kind is GPU but torch sees no CUDA device")
        return torch.device(f"cuda:{int(args['model_instance_device_id'])}")
    return torch.device("cpu")


class ForwardMetrics:
    """Prometheus counters beside Triton's own: how full and how padded each forward is."""

    def __init__(self, labels: dict[str, str]):
        # A Metric is only valid while its MetricFamily lives: keep both.
        self.families = []

        def counter(name: str, description: str):
            family = pb_utils.MetricFamily(name=name, description=description, kind=pb_utils.MetricFamily.COUNTER)
            self.families.append(family)
            return family.Metric(labels=labels)

        self.forwards = counter("clf_forward_passes_total", "Forward passes run by the classifier")
        self.sequences = counter("clf_forward_sequences_total", "Sequences classified, summed over forward passes")
        self.real_tokens = counter("clf_forward_real_tokens_total", "Real (attended) tokens in forward passes")
        self.padded_tokens = counter(
            "clf_forward_padded_tokens_total", "Tokens computed in forward passes, padding included"
        )
        self.attention_tokens = counter(
            "clf_forward_attention_tokens_total", "Query positions computed in attention, padding included"
        )
        self.forward_us = counter("clf_forward_duration_us_total", "Time spent in forward passes, microseconds")
        dropped = pb_utils.MetricFamily(
            name="clf_requests_dropped_total",
            description="Requests answered CANCELLED before the forward pass: their caller no longer waits. "
            "reason expired: the request carried a timeout (a deadline), cancelled: it did not",
            kind=pb_utils.MetricFamily.COUNTER,
        )
        self.families.append(dropped)
        self.dropped = {reason: dropped.Metric(labels={**labels, "reason": reason}) for reason in DROP_REASONS}

    def record(self, stats, duration_us: float) -> None:
        for forward in stats:
            self.forwards.increment(1)
            self.sequences.increment(forward.rows)
            self.real_tokens.increment(forward.real_tokens)
            self.padded_tokens.increment(forward.padded_tokens)
            self.attention_tokens.increment(forward.attention_tokens)
        self.forward_us.increment(duration_us)


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        self.model_config = json.loads(args["model_config"])
        self.settings = read_settings(self.model_config)
        check_settings(self.settings, args.get("model_instance_kind", "CPU"))
        self.device = instance_device(args)
        torch.set_num_threads(torch_threads(self.settings, cpu_instances(self.model_config), self.device))

        version_dir = Path(args["model_repository"]) / args["model_version"]
        checkpoint = version_dir / self.settings.checkpoint
        self.engine = ClassifierEngine.load(checkpoint, self.device, self.settings)
        self.metrics = ForwardMetrics({"model": args["model_name"], "version": args["model_version"]})
        self.rate = RowRate()
        pb_utils.Logger.log_info(
            f"{args['model_name']}: {self.engine.problem_type}, {self.engine.num_labels} labels, "
            f"{self.settings.precision} on {self.device}, {torch.get_num_threads()} threads, "
            f"{self.engine.packed.gemm_choice}"
        )

    def execute(self, requests):
        # Each stage keeps one entry per request: its data, or the error that ends it.
        wanted = [self.drop_abandoned(request) for request in requests]
        tensors = [self.decode(entry) for entry in wanted]
        rows = [self.validate(entry) for entry in tensors]
        outputs = self.forward_in_time(requests, rows)
        return [self.encode(entry) for entry in outputs]

    def drop_abandoned(self, request):
        """The request, or ``Dropped`` when its caller no longer waits (cancelled, or past its deadline)."""
        if not self.settings.drop_cancelled:
            return request
        dropped = abandoned(request)
        if dropped is None:
            return request
        self.metrics.dropped[dropped.reason].increment(1)
        return dropped

    def decode(self, request):
        """The request's ``input_ids`` and ``attention_mask`` (None when absent) arrays."""
        if isinstance(request, Dropped):
            return request
        ids = pb_utils.get_input_tensor_by_name(request, "input_ids")
        if ids is None:
            return InvalidRequest("input_ids is required")
        mask = pb_utils.get_input_tensor_by_name(request, "attention_mask")
        return ids.as_numpy(), None if mask is None else mask.as_numpy()

    def validate(self, tensors):
        """The request's rows, checked and trimmed of padding (``clf_serving.validation``)."""
        if not isinstance(tensors, tuple):  # its error already
            return tensors
        try:
            return validate_request(*tensors, self.engine.limits)
        except InvalidRequest as error:
            return error

    def forward_in_time(self, requests, entries: list) -> list:
        """``forward`` in chunks that fit the requests' deadlines (``clf_serving.deadlines``); before each
        chunk after the first, the requests whose caller has gone since are dropped."""
        counts = [len(entry) if isinstance(entry, list) else 0 for entry in entries]
        limit = chunk_rows([request.timeout() for request in requests], self.rate.rows_per_s)
        groups = chunks(counts, limit)
        if len(groups) <= 1 or not self.settings.drop_cancelled:
            return self.forward(entries)
        results = list(entries)
        for number, group in enumerate(groups):
            # The first chunk's requests were checked a moment ago (drop_abandoned in execute).
            checked = [self.drop_abandoned(requests[i]) if number else None for i in group]
            part = [c if isinstance(c, Dropped) else entries[i] for i, c in zip(group, checked, strict=True)]
            for i, outcome in zip(group, self.forward(part), strict=True):
                results[i] = outcome
        return results

    def forward(self, entries: list) -> list:
        """Each request's (logits, scores): one ``classify`` over the rows of all valid requests."""
        spans = row_spans(entries)
        sequences = [row for entry in entries if isinstance(entry, list) for row in entry]
        if not sequences:
            return entries
        started = time.perf_counter()
        try:
            logits, stats = self.engine.classify(sequences)
        except Exception as error:  # e.g. out of memory: fail this batch, keep serving
            failure = pb_utils.TritonError(f"forward failed: {error}")
            return [e if span is None else failure for e, span in zip(entries, spans, strict=True)]
        seconds = time.perf_counter() - started
        self.metrics.record(stats, seconds * 1e6)
        self.rate.record(len(sequences), seconds)
        scores = scores_from_logits(logits, self.engine.problem_type)
        return [e if span is None else (logits[span], scores[span]) for e, span in zip(entries, spans, strict=True)]

    def encode(self, outputs):
        """One response: the request's logits and scores, or its error."""
        if isinstance(outputs, InvalidRequest):
            return pb_utils.InferenceResponse(error=invalid_argument(str(outputs)))
        if isinstance(outputs, Dropped):
            return pb_utils.InferenceResponse(error=cancelled(str(outputs)))
        if not isinstance(outputs, tuple):
            return pb_utils.InferenceResponse(error=outputs)
        logits, scores = outputs
        tensors = [pb_utils.Tensor("logits", logits), pb_utils.Tensor("probabilities", scores)]
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def finalize(self) -> None:
        self.engine = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
