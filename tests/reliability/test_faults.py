"""Faults under load: SIGTERM loses no in-flight request; a killed Python-backend stub is recovered by
the launcher's restart, reported clearly to raw callers, and ridden through by the client's retries.

Each test starts a server of its own on the tiny checkpoint: these tests stop or break it.
"""

from __future__ import annotations

import contextlib
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
from traffic import FIGURES, FULL_BATCH, MODEL, Case, send_all, tensor
from tritonclient.utils import InferenceServerException

from distilbert_client import Classifier, ClassifierError, RetryPolicy
from distilbert_serving.export import ServingConfig, write_model
from distilbert_serving.launch import STUB_NAME, LocalServer, child_processes, free_port, options_on_free_ports
from helpers import reference_logits, token_ids

LAUNCHER = Path(__file__).resolve().parents[2] / "build" / "launch.py"
NOT_HEALTHY = "is not healthy"


@pytest.fixture(scope="module")
def small_repository(tmp_path_factory, tiny_checkpoints) -> Path:
    repository = tmp_path_factory.mktemp("faults_repository")
    # The default export, but no queue timeout: on a busy machine 40 full batches may wait over 10 s,
    # and the SIGTERM test counts every one of them answered.
    write_model(
        tiny_checkpoints["single_label_classification"], repository, ServingConfig(queue_timeout_us=0, precision="fp32")
    )
    return repository


def test_sigterm_under_load_finishes_every_in_flight_request(small_repository, tmp_path):
    options = options_on_free_ports(small_repository, exit_timeout_s=60)
    server = LocalServer(options, log_path=tmp_path / "tritonserver.log").start(timeout_s=240)
    try:
        heavy = np.full((FULL_BATCH, 512), 1000, dtype=np.int64)  # one execute each, ~0.1–0.3 s on the tiny model
        with grpcclient.InferenceServerClient(server.grpc_url) as client:
            client.infer(MODEL, [tensor("input_ids", heavy)])  # warm-up
            one_started = time.perf_counter()
            expected = client.infer(MODEL, [tensor("input_ids", heavy)]).as_numpy("logits")
            one_s = time.perf_counter() - one_started
            cases = [Case("heavy", MODEL, [tensor("input_ids", heavy)], expected)] * 40
            answers: list = []
            sender = threading.Thread(target=lambda: answers.extend(send_all(client, cases, window=len(cases))))
            started = time.perf_counter()
            sender.start()
            # All 40 are sent at once (they fit the queue of 64) and take ~20 × one_s on two instances: after
            # ~4 × one_s a few are answered and the rest queued or running, on a fast machine or a slow one.
            time.sleep(max(4 * one_s, 0.1))
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


@contextlib.contextmanager
def launcher_on_free_ports(repository: Path):
    """``build/launch.py`` with its defaults (unrestricted) on free ports: (its process, the gRPC port);
    stopped with SIGTERM afterwards, as an operator would."""
    grpc = free_port()
    command = [sys.executable, str(LAUNCHER), "--model-repository", str(repository), "--grpc-port", str(grpc)]
    command += ["--http-port", str(free_port()), "--metrics-port", str(free_port()), "--unrestricted"]
    launcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield launcher, grpc
    finally:
        launcher.send_signal(signal.SIGTERM)
        try:
            launcher.wait(timeout=60)
        except subprocess.TimeoutExpired:
            launcher.kill()
            launcher.wait()


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


def test_killed_stub_is_restarted_by_the_launcher_and_ridden_through_by_the_client(small_repository, tiny_checkpoints):
    """The default export (two instances) under the launcher's defaults (exit timeout 30 s): a stub SIGKILLed
    under load. The launcher restarts the server without waiting out the exit timeout; library callers with
    a 30 s deadline ride through on retries; a raw client sees only clear, retryable errors."""
    checkpoint = tiny_checkpoints["single_label_classification"]
    text = "The stub died and the service came back."
    ids = token_ids(checkpoint, [text])
    expected = reference_logits(checkpoint, ids)[0]
    with launcher_on_free_ports(small_repository) as (launcher, grpc):
        events: dict[str, float] = {}
        lines: list[str] = []

        def read_output():
            for line in launcher.stdout:
                lines.append(line)
                for marker in ("ready:", "a Python-backend stub died", "tritonserver stopped", "ready again:"):
                    if line.startswith(marker):
                        events.setdefault(marker, time.monotonic())

        reader = threading.Thread(target=read_output, daemon=True)
        reader.start()
        started = time.monotonic()
        while "ready:" not in events:
            assert launcher.poll() is None and time.monotonic() - started < 240, "".join(lines)
            time.sleep(0.2)
        retry = RetryPolicy(attempts=100, initial_backoff_s=0.1, max_backoff_s=0.5)
        library: list[tuple[float, float, str]] = []  # (start, end, "ok" or the error class: message)
        raw: list[tuple[float, float, str]] = []  # the same for a plain tritonclient caller
        stop = threading.Event()

        def classify_forever():
            with Classifier(f"localhost:{grpc}", checkpoint, retry=retry, timeout_s=30) as classifier:
                while not stop.is_set():
                    began = time.monotonic()
                    try:
                        result = classifier.classify(text)
                        assert np.abs(np.array(result.logits) - expected).max() <= 1e-4
                        library.append((began, time.monotonic(), "ok"))
                    except ClassifierError as error:
                        library.append((began, time.monotonic(), f"{type(error).__name__}: {error.message}"))
                        time.sleep(0.05)

        def infer_forever():
            with grpcclient.InferenceServerClient(f"localhost:{grpc}") as client:
                while not stop.is_set():
                    began = time.monotonic()
                    try:
                        client.infer(MODEL, [tensor("input_ids", np.array(ids))], client_timeout=10)
                        raw.append((began, time.monotonic(), "ok"))
                    except InferenceServerException as error:
                        raw.append((began, time.monotonic(), f"{error.status()} {error.message()}"))
                        time.sleep(0.05)

        callers = [threading.Thread(target=classify_forever) for _ in range(3)]
        callers.append(threading.Thread(target=infer_forever))
        for caller in callers:
            caller.start()
        time.sleep(1.0)
        server_pid, stub = stub_of(launcher)
        killed = time.monotonic()
        os.kill(stub, signal.SIGKILL)
        deadline = time.monotonic() + 180
        while "ready again:" not in events and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "ready again:" in events, "".join(lines)
        # Until every caller has been answered again: a gRPC channel that failed to connect for a while
        # reconnects only after its backoff, seconds after the server is back.
        recovered = time.monotonic() + 60
        while time.monotonic() < recovered and not all(
            calls and calls[-1][2] == "ok" and calls[-1][0] > events["ready again:"] for calls in (library, raw)
        ):
            time.sleep(0.2)
        time.sleep(1.0)
        stop.set()
        for caller in callers:
            caller.join(timeout=90)
        raw_failures = [o for o in raw if o[2] != "ok" and o[1] > killed]
        first_failure = min((o[1] for o in raw_failures), default=None)
        first_success = min(
            (o[1] for o in raw if o[2] == "ok" and first_failure and o[1] > first_failure), default=None
        )
        library_failures = [o[2] for o in library if o[2] != "ok"]
        FIGURES["stub killed under load"] = {
            "restart noticed s": round(events["a Python-backend stub died"] - killed, 1),
            "server stopped s": round(events["tritonserver stopped"] - killed, 1),
            "serving again s": round(events["ready again:"] - killed, 1),
            "raw outage (first failure to first success) s": (
                round(first_success - first_failure, 1) if first_success and first_failure else None
            ),
            "raw errors": dict(Counter(o[2].split(" ")[0] for o in raw_failures)),
            "raw answered again after ready s": round(
                min(o[1] for o in raw if o[2] == "ok" and o[0] > events["ready again:"]) - events["ready again:"], 1
            ),
            "library calls": len(library),
            "library calls failed": len(library_failures),
            "library calls ok through the restart": sum(
                1 for o in library if o[2] == "ok" and o[0] < events["ready again:"] < o[1]
            ),
        }
        # What a raw caller may see: the dead stub's clear INTERNAL error (until the launcher notices),
        # the stopping server's UNAVAILABLE, and UNAVAILABLE while nothing listens. All clear, none hangs.
        for failure in raw_failures:
            status = failure[2].split(" ")[0]
            assert status.endswith(("UNAVAILABLE", "INTERNAL", "NOT_FOUND")), failure
            assert not status.endswith("INTERNAL") or NOT_HEALTHY in failure[2], failure
        # The launcher does not wait out the exit timeout (30 s): the dead model never unloads.
        assert events["tritonserver stopped"] - killed < 10
        # Library callers ride through: the dead stub's INTERNAL and the restart's UNAVAILABLE are retried
        # within the 30 s deadline.
        assert not library_failures, library_failures
        assert library[-1][2] == "ok" and raw[-1][2] == "ok"
        assert server_pid not in [pid for pid, _, _ in child_processes(launcher.pid)]


def test_crashed_server_is_started_again_by_the_launcher(small_repository, tiny_checkpoints):
    """tritonserver itself killed by a signal (as the Python backend's SIGSEGV under load does, RELIABILITY.md §3):
    the launcher starts it again, and a client that retries is answered."""
    checkpoint = tiny_checkpoints["single_label_classification"]
    with launcher_on_free_ports(small_repository) as (launcher, grpc):
        lines: list[str] = []
        threading.Thread(target=lambda: lines.extend(launcher.stdout), daemon=True).start()
        started = time.monotonic()
        while not any(line.startswith("ready:") for line in lines):
            assert launcher.poll() is None and time.monotonic() - started < 240, "".join(lines)
            time.sleep(0.2)
        server_pid, _ = stub_of(launcher)
        os.kill(server_pid, signal.SIGSEGV)
        deadline = time.monotonic() + 180
        while not any(line.startswith("ready again:") for line in lines) and time.monotonic() < deadline:
            assert launcher.poll() is None, "".join(lines)
            time.sleep(0.2)
        assert any(line.startswith("tritonserver crashed: starting it again") for line in lines), "".join(lines)
        with Classifier(f"localhost:{grpc}", checkpoint, timeout_s=30, ready_timeout_s=30) as classifier:
            assert classifier.classify("Back after a crash.").label
        assert stub_of(launcher)[0] != server_pid
