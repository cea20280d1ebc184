"""Security defaults: restricted protocol groups, gRPC over TLS, a fixed repository, safetensors only."""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from servers import self_signed_certificate, tls_client
from traffic import FULL_BATCH, MODEL, tensor
from tritonclient.utils import InferenceServerException

from distilbert_serving.export import checkpoint_facts
from distilbert_serving.launch import free_port
from distilbert_serving.server_flags import ADMIN_KEY_ENV, ADMIN_KEY_HEADER, ServerOptions, server_flags

LAUNCHER = Path(__file__).resolve().parents[2] / "build" / "launch.py"
RESTRICTED_CALLS = {
    "statistics": lambda c, h: c.get_inference_statistics(MODEL, headers=h),
    "model-repository index": lambda c, h: c.get_model_repository_index(headers=h),
    "shared-memory": lambda c, h: c.get_system_shared_memory_status(headers=h),
    "trace": lambda c, h: c.get_trace_settings(headers=h),
    "logging": lambda c, h: c.get_log_settings(headers=h),
}


def http_status(url: str, headers: dict | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.parametrize("call", sorted(RESTRICTED_CALLS))
def test_restricted_group_is_refused_without_the_admin_key_and_served_with_it(client, admin_headers, call):
    for headers in (None, {next(iter(admin_headers)): "not-the-key"}):
        with pytest.raises(InferenceServerException) as refused:
            RESTRICTED_CALLS[call](client, headers)
        assert "This protocol is restricted" in refused.value.message()
    RESTRICTED_CALLS[call](client, admin_headers)


def test_models_are_loaded_or_unloaded_only_with_the_admin_key(client, admin_headers):
    for action in (client.load_model, client.unload_model):
        with pytest.raises(InferenceServerException) as refused:
            action(MODEL)
        assert "This protocol is restricted" in refused.value.message()
    client.load_model(MODEL, headers=admin_headers)  # nothing changed on disk: the loaded version serves on
    assert client.is_model_ready(MODEL)


def test_server_flags_fix_the_repository_at_start_without_an_admin_key():
    assert "--model-control-mode=none" in server_flags(ServerOptions(model_repository="/models"))
    keyed = server_flags(ServerOptions(model_repository="/models", admin_key="k"))
    assert {"--model-control-mode=explicit", "--load-model=*"} <= set(keyed)


def test_inference_health_and_metadata_stay_open(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.get_model_metadata(MODEL).name == MODEL
    assert client.get_model_config(MODEL).config.max_batch_size == FULL_BATCH
    assert client.infer(MODEL, [tensor("input_ids", np.array([[101, 2023, 102]]))]).as_numpy("logits").shape == (1, 3)


def test_http_restricted_api_answers_403_without_the_key(hardened_server):
    stats = f"{hardened_server.http_url}/v2/models/stats"
    assert http_status(stats) == 403
    assert http_status(stats, {ADMIN_KEY_HEADER: "not-the-key"}) == 403
    assert http_status(stats, {ADMIN_KEY_HEADER: hardened_server.options.admin_key}) == 200
    assert http_status(f"{hardened_server.http_url}/v2/health/ready") == 200


def test_grpc_refuses_plaintext_and_untrusted_certificates(hardened_server, tmp_path):
    plain = grpcclient.InferenceServerClient(f"localhost:{hardened_server.options.grpc_port}")
    with plain, pytest.raises(InferenceServerException):
        plain.is_server_live(client_timeout=5)
    other_ca, _ = self_signed_certificate(tmp_path)
    with tls_client(hardened_server, other_ca) as untrusted, pytest.raises(InferenceServerException):
        untrusted.is_server_live(client_timeout=5)


def test_server_flags_turn_on_grpc_tls_and_refuse_half_a_configuration():
    base = {"model_repository": "/models"}
    assert not any("ssl" in flag for flag in server_flags(ServerOptions(**base)))
    flags = server_flags(ServerOptions(**base, grpc_tls_cert="c.pem", grpc_tls_key="k.pem"))
    assert {"--grpc-use-ssl=true", "--grpc-server-cert=c.pem", "--grpc-server-key=k.pem"} <= set(flags)
    mutual = server_flags(ServerOptions(**base, grpc_tls_cert="c", grpc_tls_key="k", grpc_tls_client_ca="ca"))
    assert {"--grpc-use-ssl-mutual=true", "--grpc-root-cert=ca"} <= set(mutual)
    with pytest.raises(ValueError, match="both a certificate and its private key"):
        server_flags(ServerOptions(**base, grpc_tls_cert="c.pem"))


def test_export_refuses_a_checkpoint_without_safetensors(tiny_checkpoints, tmp_path):
    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_checkpoints["single_label_classification"], pickled)
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")
    with pytest.raises(SystemExit, match="pickled .bin weights are never loaded"):
        checkpoint_facts(pickled)


def test_launcher_restricts_by_default_with_a_generated_key_and_serves_grpc_over_tls(
    reliability_repository, tls_files, tmp_path
):
    cert, key = tls_files
    grpc, http = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k != ADMIN_KEY_ENV}
    command = [sys.executable, str(LAUNCHER), "--model-repository", str(reliability_repository)]
    command += ["--grpc-port", str(grpc), "--http-port", str(http), "--metrics-port", str(free_port())]
    command += ["--exit-timeout-s", "5", "--grpc-tls-cert", str(cert), "--grpc-tls-key", str(key)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        lines, deadline = [], time.monotonic() + 240
        while time.monotonic() < deadline and not (lines and lines[-1].startswith("ready:")):
            lines.append(process.stdout.readline())
            assert lines[-1], "".join(lines)
        output = "".join(lines)
        key_file = Path(re.search(r"the key is in (\S+)", output).group(1))
        admin_key = key_file.read_text()
        assert admin_key not in output, "the generated key must not be printed"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        stats = f"http://127.0.0.1:{http}/v2/models/stats"
        assert http_status(stats) == 403 and http_status(stats, {ADMIN_KEY_HEADER: admin_key}) == 200
        with grpcclient.InferenceServerClient(f"localhost:{grpc}", ssl=True, root_certificates=str(cert)) as client:
            result = client.infer(MODEL, [tensor("input_ids", np.array([[101, 2023, 102]]))])
            assert result.as_numpy("logits").shape == (1, 3)
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0


def test_client_library_classifies_over_tls_and_refuses_a_plaintext_connection(
    hardened_server, tls_files, tiny_checkpoints
):
    from distilbert_client import AsyncClassifier, Classifier, ServerUnavailableError
    from helpers import reference_logits, token_ids

    checkpoint = tiny_checkpoints["single_label_classification"]
    url = f"localhost:{hardened_server.options.grpc_port}"
    texts = ["Connections are encrypted with TLS.", "The client trusts only the given CA."]
    expected = reference_logits(checkpoint, token_ids(checkpoint, texts))

    with Classifier(url, checkpoint, root_certificates=str(tls_files[0])) as classifier:
        results = classifier.classify(texts)
    assert np.abs(np.array([r.logits for r in results]) - expected).max() <= 1e-4

    async def classify_async():
        async with AsyncClassifier(url, checkpoint, root_certificates=str(tls_files[0])) as classifier:
            return await classifier.classify(texts)

    import asyncio

    assert [r.logits for r in asyncio.run(classify_async())] == [r.logits for r in results]
    with pytest.raises(ServerUnavailableError):
        Classifier(url, checkpoint, timeout_s=3)
