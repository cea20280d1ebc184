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
from helpers import AUTO_MODEL, INT8_MODEL, MODELS


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
