"""A real ``tritonserver`` (from the nvidia-pytriton wheel), started once for the session.

The test repository holds one tiny model per problem type, exported by the same
``build/export.py`` a user runs. The fixture waits for readiness with a deadline and
always stops the server, printing its log if it failed to start.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import tritonclient.grpc as grpcclient

from distilbert_serving.export import ServingConfig, TextModelConfig, write_model, write_text_model
from distilbert_serving.launch import LocalServer, options_on_free_ports
from distilbert_serving.server_flags import generate_admin_key
from helpers import AUTO_MODEL, INT8_MODEL, MODELS, running


@pytest.fixture(scope="session")
def model_repository(tmp_path_factory, tiny_checkpoints) -> Path:
    repository = tmp_path_factory.mktemp("model_repository")
    for problem_type, name in MODELS.items():
        # One thread each: four models share two cores with the tests themselves.
        write_model(
            tiny_checkpoints[problem_type], repository, ServingConfig(model_name=name, cpu_threads=1, precision="fp32")
        )
    single = "single_label_classification"
    int8 = ServingConfig(model_name=INT8_MODEL, cpu_threads=1, precision="int8")
    write_model(tiny_checkpoints[single], repository, int8)
    write_model(tiny_checkpoints[single], repository, ServingConfig(model_name=AUTO_MODEL, cpu_threads=1))
    # The raw-text model over the single-label one (one instance: two cores; so no queue policy,
    # which needs two instances on Triton 2.51).
    text_model = TextModelConfig(instance_count=1, max_queue_size=0, queue_timeout_us=0)
    write_text_model(tiny_checkpoints[single], repository, ServingConfig(model_name=MODELS[single]), text_model)
    return repository


@pytest.fixture(scope="session")
def server(model_repository, tmp_path_factory):
    options = options_on_free_ports(model_repository, exit_timeout_s=10)
    local = LocalServer(options, log_path=tmp_path_factory.mktemp("server") / "tritonserver.log")
    local.start(timeout_s=240)
    yield local
    local.stop()


@pytest.fixture
def grpc_client(server):
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        yield client


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory, tiny_checkpoints) -> list[LocalServer]:
    """Two servers of the single-label model, with an admin key as the launcher runs them: the pods of a
    Deployment behind a headless Service. Module-scoped: a module that restarts them leaves no other affected."""
    repository = tmp_path_factory.mktemp("two_servers_repository")
    single = "single_label_classification"
    serving = ServingConfig(model_name=MODELS[single], cpu_threads=1, precision="fp32")
    write_model(tiny_checkpoints[single], repository, serving)
    key = generate_admin_key()
    servers = [
        LocalServer(
            options_on_free_ports(repository, exit_timeout_s=10, admin_key=key),
            log_path=tmp_path_factory.mktemp(f"server_{n}") / "tritonserver.log",
        )
        for n in range(2)
    ]
    with running(servers):
        yield servers
