"""docker/liveness_probe.py restarts a pod whose model fails or hangs, and never one that is only busy.

A stand-in for Triton's HTTP and metrics endpoints runs on loopback; each test sets what it
answers (live or not, an inference result, an error, or no answer in time, and the model's
``nv_inference_exec_count``) and reads the probe's verdict.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from helpers import docker_script

liveness_probe = docker_script("liveness_probe")

MODEL = "distilbert_classifier"
CUDA_ERROR = "CUDA error: an illegal memory access was encountered"


class FakeTriton:
    """What the fake server answers; tests change the attributes."""

    def __init__(self):
        self.live_status = 200
        self.infer_status = 200
        self.infer_body = {"model_name": MODEL, "outputs": []}
        self.infer_delay_s = 0.0
        self.exec_count = 7
        self.requests: list[dict] = []

    def metrics(self) -> str:
        return (
            "# TYPE nv_inference_exec_count counter\n"
            f'nv_inference_exec_count{{model="{MODEL}",version="1"}} {self.exec_count}\n'
            'nv_inference_exec_count{model="distilbert_text",version="1"} 999\n'
        )


@pytest.fixture
def triton():
    fake = FakeTriton()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, status: int, body: bytes, content_type: str = "application/json"):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/v2/health/live":
                self.reply(fake.live_status, b"")
            elif self.path == "/metrics":
                self.reply(200, fake.metrics().encode(), "text/plain")
            else:
                self.reply(404, b"")

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            fake.requests.append({"path": self.path, "body": body})
            time.sleep(fake.infer_delay_s)
            self.reply(fake.infer_status, json.dumps(fake.infer_body).encode())

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield fake
    server.shutdown()
    server.server_close()


def check(triton: FakeTriton, state, timeout_s: float = 2.0) -> liveness_probe.Verdict:
    return liveness_probe.check(triton.url, f"{triton.url}/metrics", MODEL, "input_ids", timeout_s, state)


def test_probe_passes_when_the_model_answers_a_one_row_request_of_valid_token_ids(triton, tmp_path):
    verdict = check(triton, tmp_path / "state.json")
    assert verdict.alive, verdict.reason
    (request,) = triton.requests
    assert request["path"] == f"/v2/models/{MODEL}/infer"
    assert request["body"] == {"inputs": [{"name": "input_ids", "shape": [1, 2], "datatype": "INT64", "data": [0, 0]}]}


def test_probe_fails_when_the_model_answers_with_an_error_and_says_which(triton, tmp_path):
    triton.infer_status, triton.infer_body = 500, {"error": CUDA_ERROR}
    verdict = check(triton, tmp_path / "state.json")
    assert not verdict.alive
    assert CUDA_ERROR in verdict.reason and "500" in verdict.reason


def test_probe_fails_when_the_server_is_not_live(triton, tmp_path):
    triton.live_status = 503
    verdict = check(triton, tmp_path / "state.json")
    assert not verdict.alive and "not live" in verdict.reason
    assert not triton.requests, "no inference is sent to a server that is not live"


def test_probe_fails_when_nothing_listens(tmp_path):
    verdict = liveness_probe.check(
        "http://127.0.0.1:9", "http://127.0.0.1:9/metrics", MODEL, "input_ids", 1.0, tmp_path
    )
    assert not verdict.alive and "not live" in verdict.reason


def test_probe_passes_a_busy_model_that_runs_batches_and_fails_one_that_runs_none(triton, tmp_path):
    state = tmp_path / "state.json"
    triton.infer_delay_s = 1.0  # longer than the probe waits: the request sits in a queue
    first = check(triton, state, timeout_s=0.3)
    assert first.alive, "the first check has no earlier count to compare: no restart on a guess"

    triton.exec_count += 12  # batches ran since: busy
    busy = check(triton, state, timeout_s=0.3)
    assert busy.alive and "busy" in busy.reason and "12 batches" in busy.reason

    hung = check(triton, state, timeout_s=0.3)  # requests wait, no batch ran
    assert not hung.alive and "hung" in hung.reason


def test_probe_passes_after_a_restart_reset_the_counters(triton, tmp_path):
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"exec_count": 10_000}))  # the emptyDir outlives the container
    triton.infer_delay_s = 1.0
    assert check(triton, state, timeout_s=0.3).alive


def test_probe_remembers_the_count_after_an_answer_too(triton, tmp_path):
    state = tmp_path / "state.json"
    assert check(triton, state).alive
    assert json.loads(state.read_text()) == {"exec_count": triton.exec_count}


def test_exec_count_sums_the_models_versions_and_ignores_other_models():
    text = (
        '# HELP nv_inference_exec_count ...\nnv_inference_exec_count{model="m",version="1"} 3\n'
        'nv_inference_exec_count{model="m",version="2"} 4\nnv_inference_exec_count{model="mm",version="1"} 50\n'
        'nv_inference_count{model="m",version="1"} 100\n'
    )
    assert liveness_probe.exec_count(text, "m") == 7
    assert liveness_probe.exec_count(text, "absent") is None


def test_main_exits_0_for_a_live_model_and_1_for_a_failing_one_printing_the_reason(triton, tmp_path, capsys):
    port = triton.url.rsplit(":", 1)[1]
    argv = ["--model", MODEL, "--input", "input_ids", "--http-port", port, "--metrics-port", port]
    argv += ["--state", str(tmp_path / "state.json")]
    assert liveness_probe.main(argv) == 0
    triton.infer_status, triton.infer_body = 500, {"error": CUDA_ERROR}
    assert liveness_probe.main(argv) == 1
    assert CUDA_ERROR in capsys.readouterr().out
