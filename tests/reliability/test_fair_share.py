"""Two callers sending 20 MB texts as fast as they can do not take the raw-text model from four others.

The scenario of docs/RELIABILITY.md §7 (``python -m distilbert_serving.fair_share``), short: the
default export of the tiny model with the shipped gRPC proxy in front. The server and the four
well-behaved callers run on one core; the two heavy callers (at nice 19) and the proxy on the other,
as if on machines of their own, so that the figure is what the 20 MB texts cost the server. Quiet
and beside phases alternate three times, which spreads the machine's other work over both.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from traffic import FIGURES

from distilbert_serving.export import ServingConfig, TextModelConfig, write_model, write_text_model
from distilbert_serving.fair_share import run_scenario, stop
from distilbert_serving.launch import LocalServer, options_on_free_ports
from distilbert_serving.proxy import start_proxy

# The targets are 0.9 × the quiet answers per second and 2 × its p99 (RELIABILITY.md §7), met by the full model
# on a quiet machine. On the shared 2-core development machine the tiny model's runs measured 0.70-0.97 × (others'
# jobs land in either phase, and the quiet phase's rate alone moves by 40 %); without the size limits it was 0.01 ×.
# The floor here is 0.65 ×.
ANSWERED_FLOOR, P99_CEILING = 0.65, 2.0


@pytest.fixture(scope="module")
def behind_the_proxy(tiny_checkpoints, tmp_path_factory):
    """(the proxy's address, the heavy callers' cores): the server and this process on the last core."""
    cores = sorted(os.sched_getaffinity(0))
    server_cores, heavy_cores = ({cores[-1]}, set(cores[:-1])) if len(cores) > 1 else (set(cores), set(cores))
    repository = tmp_path_factory.mktemp("fair_share_repository")
    checkpoint = tiny_checkpoints["single_label_classification"]
    write_model(checkpoint, repository, ServingConfig(precision="fp32"))
    write_text_model(checkpoint, repository, ServingConfig(), TextModelConfig())
    os.sched_setaffinity(0, server_cores)  # the server started now inherits it
    server = proxy = None
    try:
        server = LocalServer(options_on_free_ports(repository, exit_timeout_s=10)).start(timeout_s=240)
        proxy, address = start_proxy([server.grpc_url], Path(tempfile.mkdtemp(dir=repository)), cores=heavy_cores)
        yield address, heavy_cores
    finally:
        stop(proxy, server)
        os.sched_setaffinity(0, set(cores))


def test_four_callers_keep_their_share_beside_two_sending_20_mb_texts_as_fast_as_they_can(behind_the_proxy):
    address, heavy_cores = behind_the_proxy

    report = run_scenario(address, seconds=12, rounds=3, heavy_nice=19, heavy_cores=heavy_cores)

    FIGURES["fair share behind the proxy"] = {
        "quiet answered/s": round(report.quiet.answered / report.quiet.seconds, 1),
        "beside answered/s": round(report.beside.answered / report.beside.seconds, 1),
        "ratio": round(report.answered_ratio, 2),
        "p99 quiet → beside ms": f"{report.quiet.latency.p99_ms:.0f} → {report.beside.latency.p99_ms:.0f}",
        "heavy sent": report.heavy.sent,
        "heavy refused p99 ms": round(report.heavy.latency.p99_ms),
    }
    for phase in (report.quiet, report.beside):
        assert phase.errors == phase.wrong == 0, phase.line()
    assert report.answered_ratio >= ANSWERED_FLOOR, "\n".join(report.lines())
    assert report.p99_ratio <= P99_CEILING, "\n".join(report.lines())
    # The 20 MB texts are refused at the proxy, within a second, and none reaches the server.
    assert report.heavy.sent >= 10 and report.heavy.answered == 0, report.heavy.line()
    assert all("over the proxy's size limit" in message for message in report.heavy.error_messages), report.heavy.line()
    assert report.heavy.latency.p99_ms < 1000, report.heavy.line()
