"""Faults under load: SIGTERM loses no in-flight request; a killed Python-backend stub is reported
clearly, recovered by the launcher's restart, and bridged by the client's retries.

Each test starts a server of its own on the tiny checkpoint: these tests stop or break it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from traffic import FIGURES, MODEL, Case, send_all, tensor
from tritonclient.utils import InferenceServerException

from distilbert_client import (
    Classifier,
    ClassifierError,
    ModelNotReadyError,
    RetryPolicy,
    ServerError,
    ServerUnavailableError,
)
from export import ServingConfig, write_model
from helpers import reference_logits, token_ids
from launch import STUB_NAME, LocalServer, child_processes, free_port, options_on_free_ports

LAUNCHER = Path(__file__).resolve().parents[2] / "build" / "launch.py"
NOT_HEALTHY = "is not healthy"


@pytest.fixture(scope="module")
def small_repository(tmp_path_factory, tiny_checkpoints) -> Path:
    repository = tmp_path_factory.mktemp("faults_repository")
    write_model(tiny_checkpoints["single_label_classification"], repository, ServingConfig(cpu_threads=1))
    return repository


def test_sigterm_under_load_finishes_every_in_flight_request(small_repository, tmp_path):
    options = options_on_free_ports(small_repository, exit_timeout_s=60)
    server = LocalServer(options, log_path=tmp_path / "tritonserver.log").start(timeout_s=240)
    try:
        heavy = np.full((64, 512), 1000, dtype=np.int64)  # one execute each, ~0.1–0.3 s on the tiny model
        with grpcclient.InferenceServerClient(server.grpc_url) as client:
            expected = client.infer(MODEL, [tensor("input_ids", heavy)]).as_numpy("logits")
            cases = [Case("heavy", MODEL, [tensor("input_ids", heavy)], expected)] * 40
            answers: list = []
            sender = threading.Thread(target=lambda: answers.extend(send_all(client, cases, window=len(cases))))
            started = time.perf_counter()
            sender.start()
            time.sleep(0.5)  # all 40 sent (they fit the queue of 128); a few answered, the rest queued or running
            server.process.send_signal(signal.SIGTERM)
            signalled = time.perf_counter() - started
            sender.join(timeout=120)
            code = server.process.wait(timeout=90)
        failed = [f"{a.status} {a.message}" for a in answers if a.error is not None]
        answered_after_signal = sum(1 for a in answers if a.error is None and a.seconds > signalled)
        FIGURES["sigterm under load"] = {
            "in flight": len(cases),
            "answered correctly": sum(
                1 for a in answers if a.error is None and np.abs(a.result.as_numpy("logits") - expected).max() <= 1e-4
            ),
            "answered after SIGTERM": answered_after_signal,
            "lost or failed": len(failed),
            "exit code": code,
        }
        assert len(answers) == len(cases) and not failed, failed[:5]
        assert answered_after_signal > 0, "SIGTERM came after the load finished: nothing was tested"
        for answer in answers:
            assert np.abs(answer.result.as_numpy("logits") - expected).max() <= 1e-4
        assert code == 0
    finally:
        server.stop()


def stub_of(launcher: subprocess.Popen) -> tuple[int, int]:
    """(tritonserver pid, its Python-backend stub's pid) under a running launcher."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for server_pid, _, command in child_processes(launcher.pid):
            if "tritonserver" in command:
                stubs = [pid for pid, state, cmd in child_processes(server_pid) if STUB_NAME in cmd and state != "Z"]
                if stubs:
                    return server_pid, stubs[0]
        time.sleep(0.2)
    raise AssertionError("no tritonserver with a Python-backend stub under the launcher")


def test_killed_stub_is_reported_clearly_restarted_by_the_launcher_and_retried_through_by_the_client(
    small_repository, tiny_checkpoints
):
    checkpoint = tiny_checkpoints["single_label_classification"]
    text = "The stub died and the service came back."
    expected = reference_logits(checkpoint, token_ids(checkpoint, [text]))[0]
    grpc = free_port()
    command = [sys.executable, str(LAUNCHER), "--model-repository", str(small_repository), "--grpc-port", str(grpc)]
    command += ["--http-port", str(free_port()), "--metrics-port", str(free_port()), "--exit-timeout-s", "3"]
    launcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    events: dict[str, float] = {}
    lines: list[str] = []

    def read_output():
        for line in launcher.stdout:
            lines.append(line)
            for marker in ("ready:", "a Python-backend stub died", "ready again:"):
                if line.startswith(marker):
                    events.setdefault(marker, time.monotonic())

    reader = threading.Thread(target=read_output, daemon=True)
    reader.start()
    try:
        started = time.monotonic()
        while "ready:" not in events:
            assert launcher.poll() is None and time.monotonic() - started < 240, "".join(lines)
            time.sleep(0.2)
        retry = RetryPolicy(attempts=40, initial_backoff_s=0.1, max_backoff_s=0.5)
        outcomes: list[tuple[float, float, str]] = []  # (start, end, "ok" or the error class)
        stop = threading.Event()

        def classify_forever():
            with Classifier(f"localhost:{grpc}", checkpoint, retry=retry, timeout_s=60) as classifier:
                while not stop.is_set():
                    began = time.monotonic()
                    try:
                        result = classifier.classify(text)
                        assert np.abs(np.array(result.logits) - expected).max() <= 1e-4
                        outcomes.append((began, time.monotonic(), "ok"))
                    except ClassifierError as error:
                        outcomes.append((began, time.monotonic(), f"{type(error).__name__}: {error.message}"))
                        time.sleep(0.05)

        callers = [threading.Thread(target=classify_forever) for _ in range(4)]
        for caller in callers:
            caller.start()
        time.sleep(1.0)
        server_pid, stub = stub_of(launcher)
        raw = grpcclient.InferenceServerClient(f"localhost:{grpc}")
        killed = time.monotonic()
        os.kill(stub, signal.SIGKILL)
        # What a plain client sees before the launcher notices: a clear INTERNAL error, while Triton
        # still calls the model ready.
        with pytest.raises(InferenceServerException) as broken:
            raw.infer(MODEL, [tensor("input_ids", np.array([[101, 2023, 102]]))])
        raw_error = (str(broken.value.status()), broken.value.message())
        deadline = time.monotonic() + 120
        while "ready again:" not in events and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "ready again:" in events, "".join(lines)
        time.sleep(2.0)
        stop.set()
        for caller in callers:
            caller.join(timeout=90)
        raw.close()
        recovered = events["ready again:"]
        bridged = [o for o in outcomes if o[2] == "ok" and killed < o[0] < recovered < o[1]]
        errors = [o[2] for o in outcomes if o[2] != "ok"]
        FIGURES["stub killed under load"] = {
            "raw client saw": f"{raw_error[0]} {raw_error[1]!r}",
            "restart noticed s": round(events["a Python-backend stub died"] - killed, 1),
            "serving again s": round(recovered - killed, 1),
            "client calls": len(outcomes),
            "ok": sum(1 for o in outcomes if o[2] == "ok"),
            "ok through the restart (retried)": len(bridged),
            "clear errors": dict(Counter(e.split(":")[0] for e in errors)),
        }
        assert raw_error[0].endswith("INTERNAL") and NOT_HEALTHY in raw_error[1]
        assert bridged, f"no call was retried through the restart: {outcomes}"
        for error in errors:
            # Before the restart: the model's clear error (INTERNAL, not retried: not transient in
            # general). While the server stops: the model is unloaded ("no available versions").
            # While it starts: unavailability that outlived the retries. Nothing else.
            kind = error.split(":")[0]
            assert kind in (ServerError.__name__, ModelNotReadyError.__name__, ServerUnavailableError.__name__), error
            assert kind != ServerError.__name__ or NOT_HEALTHY in error, error
        assert outcomes[-1][2] == "ok"
        assert server_pid not in [pid for pid, _, _ in child_processes(launcher.pid)]
    finally:
        launcher.send_signal(signal.SIGTERM)
        try:
            launcher.wait(timeout=60)
        except subprocess.TimeoutExpired:
            launcher.kill()
            launcher.wait()
