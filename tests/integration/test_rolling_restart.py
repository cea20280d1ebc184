"""Rolling restart: two servers, steady callers, each server SIGTERMed and started again in turn; no call fails.

Two real servers stand for the pods of a Deployment behind a headless Service; one ``Classifier`` balances
over both (``round_robin``). A stopping Triton (2.51) refuses new work ``UNAVAILABLE`` "Server is stopping",
then answers "has no available versions" while it unloads, then closes its port: the client resends each
such refusal to the other server at once, so no call fails and every answer is the one given before.
Through the shipped Envoy proxy (docker/k8s/components/grpc-proxy/envoy.yaml, its listener and hosts
moved onto loopback) a client with one connection should see the same; about 1 % of its calls still fail while
a server stops (issue #28 open for the proxy), and the last test pins what holds.
"""

from __future__ import annotations

import time

import pytest
import tritonclient.grpc as grpcclient

from distilbert_client import Classifier
from distilbert_serving.corpus import english_texts
from distilbert_serving.export import ServingConfig, write_model
from distilbert_serving.launch import LocalServer, options_on_free_ports
from distilbert_serving.proxy import start_proxy
from distilbert_serving.rollout import Callers, answers, phases, report, rolling_restart
from helpers import running

SINGLE = "single_label_classification"
MODEL = "distilbert_classifier"


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory, tiny_checkpoints):
    repository = tmp_path_factory.mktemp("rolling_repository")
    write_model(tiny_checkpoints[SINGLE], repository, ServingConfig(model_name=MODEL, cpu_threads=1, precision="fp32"))
    servers = [
        LocalServer(
            options_on_free_ports(repository, exit_timeout_s=10),
            log_path=tmp_path_factory.mktemp(f"rolling_server_{n}") / "tritonserver.log",
        )
        for n in range(2)
    ]
    with running(servers):
        yield servers


@pytest.fixture
def proxy(two_servers, tmp_path):
    """The shipped Envoy config in front of both servers, on loopback; yields its address."""

    def eject_briefly(config: dict) -> None:
        # A server restarted here keeps its address; in Kubernetes a rollout's new pod gets a new one. So the
        # 30 s ejection of a stopping pod (outlier_detection) would still hold the first server out, back and
        # healthy, when the second one stops: shortened to below the time between the two restarts.
        (cluster,) = config["static_resources"]["clusters"]
        cluster["outlier_detection"]["base_ejection_time"] = "1s"

    envoy, address = start_proxy([s.grpc_url for s in two_servers], tmp_path, edit=eject_briefly, concurrency=1)
    try:
        yield address
    finally:
        envoy.terminate()
        envoy.wait(timeout=30)


def restart_under_load(classifier: Classifier, servers: list[LocalServer]) -> tuple[list, list, str]:
    """Four steady callers through ``classifier`` while each server is restarted in turn: (phases, switches, report)."""
    texts = english_texts(40, seed=3)
    expected = {"1": answers(classifier, texts)}
    with Callers(classifier, texts, count=4, pause_s=0.005) as callers:
        begin = time.monotonic()
        time.sleep(3)
        rollout = time.monotonic()
        switches = rolling_restart(servers, settle_s=2)
        after = time.monotonic()
        time.sleep(2)
    figures = phases(callers.calls, (begin, rollout, after, time.monotonic()), expected)
    return figures, switches, report(figures, switches, callers.errors)


def requests_served(server: LocalServer) -> int:
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        stats = client.get_inference_statistics(MODEL, as_json=True)
    return int(stats["model_stats"][0].get("inference_stats", {}).get("success", {}).get("count", 0))


def test_rolling_restart_of_two_servers_fails_no_call_of_four_steady_callers_and_changes_no_answer(
    two_servers, tiny_checkpoints
):
    target = "ipv4:" + ",".join(server.grpc_url for server in two_servers)
    with Classifier(target, tiny_checkpoints[SINGLE], load_balancing="round_robin", timeout_s=30) as classifier:
        figures, switches, text = restart_under_load(classifier, two_servers)

    print(text)  # pytest -s shows the figures
    assert all(p.calls > 0 for p in figures), figures
    assert [(p.failed, p.wrong) for p in figures] == [(0, 0)] * 3, text
    # Both servers serve again after their restart (their counters start at zero then).
    assert all(requests_served(server) > 0 for server in two_servers)


def test_rolling_restart_behind_the_shipped_proxy_changes_no_answer_and_fails_few_calls_only_while_a_server_stops(
    two_servers, proxy, tiny_checkpoints
):
    # Issue #28's target is 0 failed calls here too; it is not met: the proxy's retries do not yet carry every
    # call a stopping server refuses to the other one (about 1 % failed in the measured runs). This pins what holds.
    with Classifier(proxy, tiny_checkpoints[SINGLE], timeout_s=30) as classifier:
        figures, switches, text = restart_under_load(classifier, two_servers)

    print(text)
    before, during, after = figures
    assert all(p.calls > 0 for p in figures), figures
    assert [p.wrong for p in figures] == [0, 0, 0], text
    assert (before.failed, after.failed) == (0, 0), text
    assert during.failed <= 0.02 * during.calls, text
