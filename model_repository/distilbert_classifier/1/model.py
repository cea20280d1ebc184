"""Triton Python-backend model: a HuggingFace DistilBERT sequence classifier.

One ``execute`` is one dynamic batch of requests, each ``[rows, length]`` token ids of
its own length (``allow_ragged_batch``). The stages:

    decode + validate each request  →  plan length-sorted forwards over all valid rows
    →  forward  →  split logits back per request  →  scores  →  one response per request

A malformed request gets its own error response; the rest of the batch is served.
The serving logic itself lives in ``clf_serving`` (importable and tested without Triton).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
import triton_python_backend_utils as pb_utils

sys.path.insert(0, str(Path(__file__).parent))

from clf_serving.engine import ClassifierEngine, torch_threads  # noqa: E402
from clf_serving.scores import scores_from_logits  # noqa: E402
from clf_serving.settings import read_settings  # noqa: E402
from clf_serving.validation import InvalidRequest, validate_request  # noqa: E402


def invalid_argument(message: str):
    code = getattr(pb_utils.TritonError, "INVALID_ARG", None)
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
        cpu_instances = sum(
            int(group.get("count", 1))
            for group in self.model_config.get("instance_group", [])
            if group.get("kind") != "KIND_GPU"
        )
        torch.set_num_threads(torch_threads(self.settings, cpu_instances))
        self.device = instance_device(args)
        if self.settings.precision == "fp16" and self.device.type == "cpu":
            raise pb_utils.TritonModelException("precision fp16 needs a GPU instance; use bf16 or fp32 on the CPU")

        version_dir = Path(args["model_repository"]) / args["model_version"]
        checkpoint = version_dir / self.settings.checkpoint
        self.engine = ClassifierEngine.load(checkpoint, self.device, self.settings)
        self.optional_mask = any(
            i["name"] == "attention_mask" and i.get("optional", False) for i in self.model_config["input"]
        )
        self.metrics = ForwardMetrics({"model": args["model_name"], "version": args["model_version"]})
        pb_utils.Logger.log_info(
            f"{args['model_name']}: {self.engine.problem_type}, {self.engine.num_labels} labels, "
            f"{self.settings.precision} on {self.device}, {torch.get_num_threads()} threads"
        )

    def execute(self, requests):
        responses: list = [None] * len(requests)
        sequences, owners = [], []
        for index, request in enumerate(requests):
            try:
                rows = self.decode(request)
            except InvalidRequest as error:
                responses[index] = pb_utils.InferenceResponse(error=invalid_argument(str(error)))
                continue
            owners.append((index, len(sequences), len(rows)))
            sequences.extend(rows)

        if sequences:
            started = time.perf_counter()
            try:
                logits, stats = self.engine.classify(sequences)
            except Exception as error:  # e.g. out of memory: fail this batch, keep serving
                for index, _, _ in owners:
                    responses[index] = pb_utils.InferenceResponse(
                        error=pb_utils.TritonError(f"forward failed: {error}")
                    )
                return responses
            self.metrics.record(stats, (time.perf_counter() - started) * 1e6)
            scores = scores_from_logits(logits, self.engine.problem_type)
            for index, start, count in owners:
                responses[index] = pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor("logits", logits[start : start + count]),
                        pb_utils.Tensor("probabilities", scores[start : start + count]),
                    ]
                )
        return responses

    def decode(self, request):
        ids_tensor = pb_utils.get_input_tensor_by_name(request, "input_ids")
        if ids_tensor is None:
            raise InvalidRequest("input_ids is required")
        mask_tensor = pb_utils.get_input_tensor_by_name(request, "attention_mask")
        mask = None if mask_tensor is None else mask_tensor.as_numpy()
        return validate_request(ids_tensor.as_numpy(), mask, self.engine.limits)

    def finalize(self) -> None:
        self.engine = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
