"""Client-side load balancing: one ``Classifier`` spreads its requests over every address of its target.

Two real servers (``two_servers``, tests/integration/conftest.py) stand for the pods behind a Kubernetes
headless Service; an ``ipv4:`` target lists both addresses as the DNS name would resolve to them. Each
server restricts its statistics to the admin key, as the launcher does, so the test reads them with the key.
"""

from __future__ import annotations

from distilbert_client import Classifier
from helpers import MODELS, requests_served

SINGLE = "single_label_classification"
MODEL = MODELS[SINGLE]


def test_round_robin_classifier_sends_each_server_at_least_40_percent_of_400_requests(two_servers, tiny_checkpoints):
    target = "ipv4:" + ",".join(server.grpc_url for server in two_servers)
    before = [requests_served(server, MODEL) for server in two_servers]

    with Classifier(target, tiny_checkpoints[SINGLE], load_balancing="round_robin") as classifier:
        labels = {classifier.classify(f"Review number {n} of the film.").label for n in range(400)}

    served = [requests_served(server, MODEL) - count for server, count in zip(two_servers, before, strict=True)]
    assert sum(served) == 400 and labels <= set(classifier.model.labels)
    assert min(served) >= 0.4 * 400, f"requests per server: {served}"


def test_pick_first_classifier_sends_every_request_to_one_server(two_servers, tiny_checkpoints):
    target = "ipv4:" + ",".join(server.grpc_url for server in two_servers)
    before = [requests_served(server, MODEL) for server in two_servers]

    with Classifier(target, tiny_checkpoints[SINGLE]) as classifier:
        for n in range(20):
            classifier.classify(f"Review number {n} of the film.")

    served = [requests_served(server, MODEL) - count for server, count in zip(two_servers, before, strict=True)]
    assert sorted(served) == [0, 20], "gRPC's default policy: one connection, one server"
