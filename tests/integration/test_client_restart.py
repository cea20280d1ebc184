"""The client rides through a model reload: calls made while the model is away wait for it, within bounds.

The server here allows explicit model control (the product's servers do not: ``--model-control-mode=none``)
so that the test can unload and load the model while the server keeps answering, as it does while a
model restarts. A call retries a not-ready model with backoff while its policy and deadline allow, and
then fails with ``ModelNotReadyError``; a wrong model name still fails at once (``test_client_errors``).
"""

from __future__ import annotations

import threading
import time

import pytest
import tritonclient.grpc as grpcclient

from distilbert_client import Classifier, ClassifierError, ModelNotReadyError, RetryPolicy
from distilbert_serving.export import ServingConfig, write_model
from distilbert_serving.launch import LocalServer, free_port
from distilbert_serving.server_flags import ServerOptions

SINGLE = "single_label_classification"
MODEL = "distilbert_classifier"
# Loading the model again takes ~20 s on a busy 2-core machine: room for several times that.
PATIENT = RetryPolicy(attempts=1000, initial_backoff_s=0.05, max_backoff_s=0.25)


class ReloadableServer(LocalServer):
    """A local server whose models a client may unload and load again."""

    def command(self) -> list[str]:
        command = [flag for flag in super().command() if flag != "--model-control-mode=none"]
        return [*command, "--model-control-mode=explicit", f"--load-model={MODEL}"]


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_checkpoints):
    repository = tmp_path_factory.mktemp("reload_repository")
    write_model(tiny_checkpoints[SINGLE], repository, ServingConfig(model_name=MODEL, cpu_threads=1, precision="fp32"))
    options = ServerOptions(
        model_repository=str(repository), grpc_port=free_port(), http_port=free_port(), metrics_port=free_port(),
        exit_timeout_s=5,
    )  # fmt: skip
    with ReloadableServer(options, log_path=tmp_path_factory.mktemp("reload") / "tritonserver.log") as local:
        yield local


def test_classify_waits_through_a_model_reload_and_bounded_calls_fail_with_model_not_ready(server, tiny_checkpoints):
    checkpoint = tiny_checkpoints[SINGLE]
    outcomes: list[tuple[float, float, str]] = []  # (start, end, "ok" or the error)
    stop = threading.Event()

    def classify_until_stopped(classifier: Classifier) -> None:
        while not stop.is_set():
            began = time.monotonic()
            try:
                classifier.classify("The model came back.")
                outcomes.append((began, time.monotonic(), "ok"))
            except ClassifierError as error:
                outcomes.append((began, time.monotonic(), f"{type(error).__name__}: {error.message}"))

    with (
        Classifier(server.grpc_url, checkpoint, retry=PATIENT, timeout_s=180) as patient,
        Classifier(server.grpc_url, checkpoint) as default,
        Classifier(server.grpc_url, checkpoint, retry=PATIENT, timeout_s=1.0) as short_deadline,
        grpcclient.InferenceServerClient(server.grpc_url) as admin,
    ):
        caller = threading.Thread(target=classify_until_stopped, args=(patient,))
        caller.start()
        try:
            time.sleep(0.5)
            admin.unload_model(MODEL)
            while admin.is_model_ready(MODEL):
                time.sleep(0.05)
            unloaded = time.monotonic()

            # While the model is away: the default policy gives up after its 3 tries, and a patient
            # policy gives up at its deadline. Neither hangs.
            for classifier, limit in ((default, 1.0), (short_deadline, 1.5)):
                began = time.monotonic()
                with pytest.raises(ModelNotReadyError, match="no available versions|not found|not ready"):
                    classifier.classify("Is anyone there?")
                assert time.monotonic() - began < limit

            loading = time.monotonic()
            admin.load_model(MODEL)
            time.sleep(0.5)
            assert default.classify("Back to normal.").label in default.model.labels
        finally:
            stop.set()
            caller.join(timeout=90)

    assert [o for o in outcomes if o[2] != "ok"] == [], "every patient call succeeded"
    # The model was away from ``unloaded`` until it loaded again: a call running when the load began
    # had been retrying, and it succeeded.
    bridged = [o for o in outcomes if o[0] < loading < o[1]]
    assert bridged and unloaded < loading, f"no call waited for the reload: {outcomes}"
