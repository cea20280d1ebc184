"""The token model (Triton backend ``distilbert``): a HuggingFace DistilBERT sequence classifier.

One ``execute`` is one dynamic batch of requests, each ``[rows, length]`` token ids of
its own length (``allow_ragged_batch``). The stages:

    drop requests nobody waits for any more  →  decode each request's tensors  →  validate them
    into rows  →  forward: one ``classify`` over the rows of all valid requests, split back per
    request  →  encode one response per request

Each stage keeps one entry per request, its data or the error that ends it: a malformed request
gets its own error while the rest of the batch is served. A request whose ``deadline_unix_ms`` has
passed or comes before its forward would end is answered ``CANCELLED`` before the forward
(``clf_requests_dropped_total``); so is one cancelled (or past its gRPC deadline) before a forward long
enough to be worth asking Triton about it (``deadlines.worth_asking``), and Triton's queue drops
cancelled requests itself. The logic lives in this package's modules (tested without Triton).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import triton_python_backend_utils as pb_utils

from .cores import instance_cores, limit_idle_spin

limit_idle_spin()  # before torch loads OpenMP: idle instances give their cores back quickly

import torch  # noqa: E402

from ..contract import ATTENTION_MASK, INPUT_IDS, LOGITS, SCORES, Reason, tagged  # noqa: E402
from ..deadlines import TokenRate, chunk_tokens, chunks, too_late, worth_asking  # noqa: E402
from ..outcomes import Dropped, drop_abandoned, error_response, expire, row_spans, time_left_s  # noqa: E402
from .device import check_stub_numpy, instance_device, instance_threads  # noqa: E402
from .engine import ClassifierEngine  # noqa: E402
from .metrics import ForwardMetrics  # noqa: E402
from .scores import scores_from_logits  # noqa: E402
from .settings import check_settings, cpu_instances, read_settings  # noqa: E402
from .validation import InvalidRequest, validate_requests  # noqa: E402


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        self.model_config = json.loads(args["model_config"])
        self.settings = read_settings(self.model_config)
        check_settings(self.settings, kind := args.get("model_instance_kind", "CPU"))
        check_stub_numpy()
        self.device = instance_device(kind, int(args.get("model_instance_device_id", 0)))
        # CPU instances with cpu_threads 0 share the cores among those busy at each forward (cores.py).
        instances, configured = cpu_instances(self.model_config), self.settings.cpu_threads
        shared = None if configured or self.device.type != "cpu" else instance_threads(self.device, 0, 1)
        threads = instance_threads(self.device, configured, instances)
        self.cores = instance_cores(args["model_name"], threads, shared, instances, torch.set_num_threads)

        checkpoint = Path(args["model_repository"]) / args["model_version"] / self.settings.checkpoint
        # precision auto becomes this instance's, from the hardware it landed on (precision.py).
        self.engine = ClassifierEngine.load(checkpoint, self.device, self.settings)
        self.precision = self.engine.precision
        # Operators see each instance's precision on its counters (label ``precision``).
        labels = {"model": args["model_name"], "version": args["model_version"], "precision": self.precision.name}
        self.metrics = ForwardMetrics(pb_utils.MetricFamily, labels)
        self.rate = TokenRate()
        pb_utils.Logger.log_info(
            f"{args['model_name']}: {self.engine.problem_type}, {self.engine.num_labels} labels, "
            f"precision {self.precision.name} ({self.settings.precision} asked) on {self.device}, {threads} threads"
            f"{f' ({shared} while the other instances idle)' if shared else ''}, {self.engine.packed.gemm_choice}"
        )

    def execute(self, requests):
        # Each stage keeps one entry per request: its data, or the error that ends it. The stopwatch
        # counts each stage's time (clf_execute_stage_duration_us_total; forward laps in self.forward).
        self.stopwatch = watch = self.metrics.stopwatch()
        wanted = [self.drop_abandoned(request) for request in requests]
        watch.lap("drop")
        tensors = [self.decode(entry) for entry in wanted]
        watch.lap("decode")
        rows = validate_requests(tensors, self.engine.limits)  # each request's rows, checked, or its error
        watch.lap("validate")
        outputs = self.forward_in_time(requests, rows)
        watch.lap("deadlines")
        responses = [self.encode(request, entry) for request, entry in zip(requests, outputs, strict=True)]
        watch.lap("encode")
        return responses

    def drop_abandoned(self, request, ask_triton: bool = False):
        """The request, or ``Dropped`` when its caller no longer waits: its deadline stamp has passed,
        or (``ask_triton``) Triton says it was cancelled."""
        if not self.settings.drop_cancelled:
            return request
        return drop_abandoned(request, self.metrics.dropped, ask_triton)

    def decode(self, request):
        """The request's ``input_ids`` and ``attention_mask`` (None when absent) arrays."""
        if isinstance(request, Dropped):
            return request
        ids = pb_utils.get_input_tensor_by_name(request, INPUT_IDS)
        if ids is None:
            return InvalidRequest(f"{INPUT_IDS} is required")
        mask = pb_utils.get_input_tensor_by_name(request, ATTENTION_MASK)
        return ids.as_numpy(), None if mask is None else mask.as_numpy()

    def forward_in_time(self, requests, entries: list) -> list:
        """``forward`` for the requests whose answer can still come in time, in chunks that fit their
        deadlines (``deadlines``); before each chunk after the first, the requests whose
        caller has gone since are dropped."""
        if not self.settings.drop_cancelled:
            return self.forward(entries)
        sizes = [sum(row.length for row in entry) if isinstance(entry, list) else 0 for entry in entries]  # tokens
        timeouts = [request.timeout() for request in requests]
        if not any(timeouts) and not worth_asking(len(requests), self.rate.seconds_for(sum(sizes))):
            return self.forward(entries)  # no deadline to keep, too short to ask Triton about: one forward
        results, now = list(entries), time.time()
        lefts = [time_left_s(request, now) if size else None for request, size in zip(requests, sizes, strict=True)]
        for i in too_late(lefts, sizes, timeouts, self.rate):
            results[i], sizes[i] = expire(lefts[i], self.metrics.dropped), 0
        for number, group in enumerate(chunks(sizes, chunk_tokens(timeouts, self.rate.tokens_per_s))):
            # Before the first chunk the stamps were checked a moment ago (execute); Triton is asked only
            # before a chunk long enough for its cancelled requests to be worth finding.
            ask = worth_asking(len(group), self.rate.seconds_for(sum(sizes[i] for i in group)))
            part = [self.drop_abandoned(requests[i], ask) if number or ask else entries[i] for i in group]
            part = [p if isinstance(p, Dropped) else entries[i] for i, p in zip(group, part, strict=True)]
            for i, outcome in zip(group, self.forward(part), strict=True):
                results[i] = outcome
        return results

    def forward(self, entries: list) -> list:
        """Each request's (logits, scores): one ``classify`` over the rows of all valid requests."""
        spans = row_spans(entries)
        sequences = [row for entry in entries if isinstance(entry, list) for row in entry]
        if not sequences:
            return entries
        self.stopwatch.lap("deadlines")
        tokens = sum(row.length for row in sequences)
        started = time.perf_counter()
        try:
            with self.cores.busy(self.engine.feed_forward_macs(tokens)):
                logits, stats = self.engine.classify(sequences, self.cores.rebalance)
        except Exception as error:  # e.g. out of memory: fail this batch, keep serving
            failure = pb_utils.TritonError(tagged(Reason.FORWARD_FAILED, f"forward failed: {error}"))
            return [e if span is None else failure for e, span in zip(entries, spans, strict=True)]
        seconds = time.perf_counter() - started
        self.metrics.record(stats, seconds * 1e6)
        self.rate.record(tokens, seconds)
        self.stopwatch.lap("forward")
        scores = scores_from_logits(logits, self.engine.problem_type)
        self.stopwatch.lap("scores")
        return [e if span is None else (logits[span], scores[span]) for e, span in zip(entries, spans, strict=True)]

    def encode(self, request, outputs):
        """One response: the outputs the request asked for (all when it named none), or its error."""
        error = error_response(pb_utils, outputs, InvalidRequest)
        if error is not None:
            return error
        asked = request.requested_output_names()
        named = zip((LOGITS, SCORES), outputs, strict=True)
        return pb_utils.InferenceResponse(
            [pb_utils.Tensor(name, array) for name, array in named if not asked or name in asked]
        )

    def finalize(self) -> None:
        self.metrics.close()
        self.cores.close()
        self.engine = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
