"""Requests for the reliability tests: one ``Case`` per request, sent concurrently through a window."""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from dataclasses import dataclass, field

import numpy as np
import tritonclient.grpc as grpcclient

from distilbert_serving.export import ServingConfig
from distilbert_serving.load_test import deadline_arguments

MODEL = "distilbert_classifier"
TEXT_MODEL = "distilbert_text"
# The tiny model again, with a queue of 8 requests: short tests can overflow it.
PROBE = "overload_probe"
PROBE_QUEUE = 8
# The raw-text model in front of the probe: its BLS calls find the probe's queue full under a burst.
TEXT_PROBE = "overload_text_probe"
# Rows of a full request to the exported models (their max_batch_size): the heaviest one request can be.
FULL_BATCH = ServingConfig().max_batch_size
# The default export but with batches of 64 rows (the default before): one request of 64 × 512 tokens is
# a whole execute of ~0.2 s on the tiny model, the shape the deadline test was built and calibrated on.
DEADLINE_PROBE, DEADLINE_PROBE_BATCH = "deadline_probe", 64

# test → figures (name → value), printed at the end of the run by conftest.pytest_terminal_summary.
FIGURES: dict[str, dict[str, object]] = {}


def metric_values(metrics_url: str, name: str, **labels: str) -> dict[str, float]:
    """``{reason: value}`` of the Prometheus counter ``name`` whose labels include ``labels``."""
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}{{(.*)}} ([0-9.e+]+)", line)
        if match is None:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        if all(found.get(k) == v for k, v in labels.items()):
            values[found.get("reason", "")] = values.get(found.get("reason", ""), 0.0) + float(match.group(2))
    return values


def tensor(name: str, array: np.ndarray, dtype: str = "INT64") -> grpcclient.InferInput:
    t = grpcclient.InferInput(name, list(array.shape), dtype)
    t.set_data_from_numpy(array)
    return t


def strings(name: str, values: list[bytes]) -> grpcclient.InferInput:
    """A BYTES ``[rows, 1]`` tensor, the raw bytes as given (so invalid UTF-8 can be sent)."""
    return tensor(name, np.array(values, dtype=np.object_).reshape(-1, 1), "BYTES")


@dataclass
class Case:
    kind: str
    model: str
    inputs: list[grpcclient.InferInput]
    # A well-formed case carries its expected logits; a malformed one the phrase its error must contain.
    expected: np.ndarray | None = None
    phrase: str | None = None
    parameters: dict | None = None
    outputs: tuple[str, ...] = ("logits",)

    @property
    def malformed(self) -> bool:
        return self.phrase is not None


@dataclass
class Answer:
    result: object
    error: object
    seconds: float
    status: str = field(init=False)

    def __post_init__(self):
        self.status = "" if self.error is None else str(self.error.status()).rsplit(".", 1)[-1]

    @property
    def message(self) -> str:
        return "" if self.error is None else self.error.message()


def send_all(
    client: grpcclient.InferenceServerClient,
    cases: list[Case],
    window: int,
    timeout_s: float = 120.0,
    deadline_s: float | None = None,
) -> list[Answer]:
    """Send every case with at most ``window`` in flight; answers in the order of ``cases``.

    ``deadline_s``: each request's deadline, sent as the client library sends it: the gRPC deadline
    (gRPC cancels the call when it passes), Triton's request ``timeout`` (microseconds) and the
    deadline stamp the models read (``load_test.deadline_arguments``).
    """
    answers: list[Answer | None] = [None] * len(cases)
    slots = threading.Semaphore(window)
    done = threading.Semaphore(0)

    def callback(index, started, result, error):
        answers[index] = Answer(result, error, time.perf_counter() - started)
        slots.release()
        done.release()

    for index, case in enumerate(cases):
        assert slots.acquire(timeout=timeout_s), "no answer freed a slot in time"
        started = time.perf_counter()
        client.async_infer(
            case.model,
            case.inputs,
            outputs=[grpcclient.InferRequestedOutput(name) for name in case.outputs],
            client_timeout=deadline_s or timeout_s,
            **deadline_arguments(deadline_s, case.parameters),
            callback=lambda result, error, index=index, started=started: callback(index, started, result, error),
        )
    for _ in cases:
        assert done.acquire(timeout=timeout_s), "a request got no answer in time"
    return answers


def judge(case: Case, answer: Answer, tolerance: float = 1e-4) -> str | None:
    """None when the answer is the right one for the case, else what is wrong with it."""
    if case.malformed:
        if answer.error is None:
            return f"{case.kind}: malformed request was answered"
        if answer.status != "INVALID_ARGUMENT" or case.phrase not in answer.message:
            return f"{case.kind}: {answer.status} {answer.message!r} (expected INVALID_ARGUMENT with {case.phrase!r})"
        return None
    if answer.error is not None:
        return f"{case.kind}: well-formed request failed: {answer.status} {answer.message}"
    difference = float(np.abs(answer.result.as_numpy("logits") - case.expected).max())
    return None if difference <= tolerance else f"{case.kind}: logits differ by {difference:.2e}"
