"""Rolling restart: two servers, steady callers, each server SIGTERMed and started again in turn; no call fails.

Two real servers (``two_servers``, tests/integration/conftest.py) stand for the pods of a Deployment behind a
headless Service. A stopping Triton (2.51) fails its gRPC health check and refuses new work ``UNAVAILABLE``
"Server is stopping" at once, answers ``NOT_FOUND`` "has no available versions" while it unloads, then closes
its port. Through one ``Classifier`` balancing over both (``round_robin``), the client resends each such
refusal to the other server. Through the shipped Envoy proxy (docker/k8s/components/grpc-proxy/envoy.yaml,
its listener and hosts moved onto loopback, its ejection time shortened: ``rollout.restarted_in_place``)
and one client connection, the proxy's health check takes the stopping server out within a second and its
retries carry the refusals of that second to the other one. Either way no call fails and every answer is
the one given before.
"""

from __future__ import annotations

import pytest

from distilbert_client import Classifier
from distilbert_serving.corpus import english_texts
from distilbert_serving.launch import LocalServer
from distilbert_serving.proxy import proxy_stats, start_proxy
from distilbert_serving.rollout import Load, report, restart_under_load, restarted_in_place
from helpers import MODELS, requests_served

SINGLE = "single_label_classification"
MODEL = MODELS[SINGLE]


@pytest.fixture
def proxy(two_servers, tmp_path):
    """The shipped Envoy config in front of both servers, on loopback; yields (its address, its folder)."""
    envoy, address = start_proxy([s.grpc_url for s in two_servers], tmp_path, edit=restarted_in_place, concurrency=1)
    try:
        yield address, tmp_path
    finally:
        envoy.terminate()
        envoy.wait(timeout=30)


def restart_with_four_callers(classifier: Classifier, servers: list[LocalServer]) -> tuple[list, str]:
    """Four steady callers through ``classifier`` while each server is restarted in turn: (phases, report)."""
    texts = english_texts(40, seed=3)
    load = Load(callers=4, pause_s=0.005, before_s=3, settle_s=2, after_s=2)
    figures, switches, errors = restart_under_load(classifier, servers, texts, load)
    return figures, report(figures, switches, errors)


def test_rolling_restart_of_two_servers_fails_no_call_of_four_steady_callers_and_changes_no_answer(
    two_servers, tiny_checkpoints
):
    target = "ipv4:" + ",".join(server.grpc_url for server in two_servers)
    with Classifier(target, tiny_checkpoints[SINGLE], load_balancing="round_robin", timeout_s=30) as classifier:
        figures, text = restart_with_four_callers(classifier, two_servers)

    print(text)  # pytest -s shows the figures
    assert all(p.calls > 0 for p in figures), figures
    assert [(p.failed, p.wrong) for p in figures] == [(0, 0)] * 3, text
    # Both servers serve again after their restart (their counters start at zero then).
    assert all(requests_served(server, MODEL) > 0 for server in two_servers)


def test_rolling_restart_behind_the_shipped_proxy_fails_no_call_of_one_client_connection_and_changes_no_answer(
    two_servers, proxy, tiny_checkpoints
):
    address, folder = proxy
    with Classifier(address, tiny_checkpoints[SINGLE], timeout_s=30) as classifier:
        figures, text = restart_with_four_callers(classifier, two_servers)
    stats = proxy_stats(folder)

    print(text, stats, sep="\n")
    assert all(p.calls > 0 for p in figures), figures
    assert [(p.failed, p.wrong) for p in figures] == [(0, 0)] * 3, text
    # Each stopping server failed its health check (the proxy took it out), and both serve again.
    assert stats["health_check.failure"] >= 2, stats
    assert all(requests_served(server, MODEL) > 0 for server in two_servers)
