"""A server with the launcher's security defaults, for the reliability tests.

Restricted protocol groups (a generated admin key), gRPC over TLS with a self-signed certificate
generated here, the product's default models (token and raw-text), and
``overload_probe``: the same tiny model with a queue of 8, so that a short test can overflow it,
and ``overload_text_probe``, a raw-text model in front of it.
Figures the tests measure are collected in ``traffic.FIGURES`` and printed at the end of the run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from servers import self_signed_certificate, tls_client
from traffic import DEADLINE_PROBE, DEADLINE_PROBE_BATCH, FIGURES, PROBE, PROBE_QUEUE, TEXT_PROBE

from distilbert_serving.export import ServingConfig, TextModelConfig, write_model, write_text_model
from distilbert_serving.launch import LocalServer, options_on_free_ports
from distilbert_serving.server_flags import GRPC_ADMIN_KEY_HEADER, generate_admin_key


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("reliability figures")
        for test, figures in FIGURES.items():
            terminalreporter.write_line(f"{test}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def reliability_repository(tmp_path_factory, tiny_checkpoints) -> Path:
    repository = tmp_path_factory.mktemp("reliability_repository")
    checkpoint = tiny_checkpoints["single_label_classification"]
    # The product's defaults (RELIABILITY.md §2): two instances, a bounded queue, request timeouts honoured.
    write_model(checkpoint, repository, ServingConfig(precision="fp32"))
    probe = ServingConfig(model_name=PROBE, max_queue_size=PROBE_QUEUE, precision="fp32")
    write_model(checkpoint, repository, probe)
    write_model(
        checkpoint,
        repository,
        ServingConfig(model_name=DEADLINE_PROBE, max_batch_size=DEADLINE_PROBE_BATCH, precision="fp32"),
    )
    write_text_model(checkpoint, repository, ServingConfig(), TextModelConfig())
    write_text_model(checkpoint, repository, probe, TextModelConfig(model_name=TEXT_PROBE))
    return repository


@pytest.fixture(scope="session")
def hardened_server(reliability_repository, tls_files, tmp_path_factory):
    cert, key = tls_files
    options = options_on_free_ports(
        reliability_repository,
        exit_timeout_s=10,
        admin_key=generate_admin_key(),
        grpc_tls_cert=str(cert),
        grpc_tls_key=str(key),
    )
    server = LocalServer(options, log_path=tmp_path_factory.mktemp("hardened") / "tritonserver.log")
    server.start(timeout_s=240)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def admin_headers(hardened_server) -> dict[str, str]:
    """gRPC metadata that unlocks the restricted protocol groups."""
    return {GRPC_ADMIN_KEY_HEADER: hardened_server.options.admin_key}


@pytest.fixture
def client(hardened_server, tls_files):
    with tls_client(hardened_server, tls_files[0]) as connected:
        yield connected
