"""Client-side load balancing: one ``Classifier`` spreads its requests over every address of its target.

Two real servers stand for the pods behind a Kubernetes headless Service; an ``ipv4:`` target lists
both addresses as the DNS name would resolve to them. Each server restricts its statistics to the
admin key, as the launcher does, so the test reads them with the key.
"""

from __future__ import annotations

import pytest
import tritonclient.grpc as grpcclient

from distilbert_client import Classifier
from distilbert_serving.export import ServingConfig, write_model
from distilbert_serving.launch import LocalServer, free_port
from distilbert_serving.server_flags import GRPC_ADMIN_KEY_HEADER, ServerOptions, generate_admin_key
from helpers import running

SINGLE = "single_label_classification"
MODEL = "distilbert_classifier"


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory, tiny_checkpoints):
    repository = tmp_path_factory.mktemp("balancing_repository")
    write_model(tiny_checkpoints[SINGLE], repository, ServingConfig(model_name=MODEL, cpu_threads=1, precision="fp32"))
    key = generate_admin_key()
    servers = [
        LocalServer(
            ServerOptions(
                model_repository=str(repository),
                grpc_port=free_port(),
                http_port=free_port(),
                metrics_port=free_port(),
                exit_timeout_s=5,
                admin_key=key,
            ),
            log_path=tmp_path_factory.mktemp(f"balancing_server_{n}") / "tritonserver.log",
        )  # fmt: skip
        for n in range(2)
    ]
    with running(servers):
        yield servers


def requests_served(server: LocalServer) -> int:
    """Successful inference requests of the model so far, read with the admin key."""
    headers = {GRPC_ADMIN_KEY_HEADER: server.options.admin_key}
    with grpcclient.InferenceServerClient(server.grpc_url) as admin:
        stats = admin.get_inference_statistics(MODEL, headers=headers, as_json=True)
    success = stats["model_stats"][0].get("inference_stats", {}).get("success", {})
    return int(success.get("count", 0))


def test_round_robin_classifier_sends_each_server_at_least_40_percent_of_400_requests(two_servers, tiny_checkpoints):
    target = "ipv4:" + ",".join(server.grpc_url for server in two_servers)
    before = [requests_served(server) for server in two_servers]

    with Classifier(target, tiny_checkpoints[SINGLE], load_balancing="round_robin") as classifier:
        labels = {classifier.classify(f"Review number {n} of the film.").label for n in range(400)}

    served = [requests_served(server) - count for server, count in zip(two_servers, before, strict=True)]
    assert sum(served) == 400 and labels <= set(classifier.model.labels)
    assert min(served) >= 0.4 * 400, f"requests per server: {served}"


def test_pick_first_classifier_sends_every_request_to_one_server(two_servers, tiny_checkpoints):
    target = "ipv4:" + ",".join(server.grpc_url for server in two_servers)
    before = [requests_served(server) for server in two_servers]

    with Classifier(target, tiny_checkpoints[SINGLE]) as classifier:
        for n in range(20):
            classifier.classify(f"Review number {n} of the film.")

    served = [requests_served(server) - count for server, count in zip(two_servers, before, strict=True)]
    assert sorted(served) == [0, 20], "gRPC's default policy: one connection, one server"
