"""Liveness check that runs one real inference, for a GPU that broke while Triton stays live.

    python3 docker/liveness_probe.py --model distilbert_classifier --input input_ids        # exit 0: alive

Triton's ``/v2/health/live`` and ``/v2/health/ready`` stay green when the model's CUDA
context is broken (an Xid error, a lost GPU): the server and the Python stub are up, every
request fails. This check asks the model itself, with a one-row request of two token ids
0 (what the model's own warmup sends: ``[PAD]``, valid for any vocabulary):

=======================================  ======  =============================================
what happened                            exit    why
=======================================  ======  =============================================
the model answered                       0       alive
the model answered with an error         1       broken: a restart gets a new CUDA context
server not live (no answer, or not 200)  1       the plain liveness check
no answer within ``--timeout-s``         0 or 1  0 while the model makes progress (busy: a
                                                 restart would only shed capacity under load),
                                                 1 when requests wait and no batch has run
                                                 since the previous check (hung)
=======================================  ======  =============================================

"Progress" is Triton's ``nv_inference_exec_count`` for the model (metrics port, never
restricted), remembered between checks in ``--state`` (under ``/tmp``, the container's one
writable path). Standard library only: it runs in the image's Python beside the server.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

# The ports' one source, shared with the launcher and the entrypoint.
from distilbert_serving.server_flags import ServerOptions

DEFAULTS = ServerOptions(model_repository="")
PROBE_IDS = [[0, 0]]


@dataclass(frozen=True)
class Verdict:
    alive: bool
    reason: str


class _Timeout(Exception):
    """The server did not answer within the deadline."""


def _request(url: str, timeout_s: float, body: bytes | None = None) -> tuple[int, bytes]:
    """(HTTP status, body); raises ``_Timeout`` when no answer came in time, ``OSError`` when none came at all."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"} if body else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except TimeoutError as error:
        raise _Timeout from error
    except urllib.error.URLError as error:
        if isinstance(error.reason, TimeoutError):
            raise _Timeout from error
        raise


def exec_count(metrics_text: str, model: str) -> int | None:
    """The model's ``nv_inference_exec_count`` summed over its versions; None when absent."""
    label = f'model="{model}"'
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics_text.splitlines()
        if line.startswith("nv_inference_exec_count{") and label in line
    ]
    return int(sum(values)) if values else None


def infer_body(input_name: str) -> bytes:
    ids = [token for row in PROBE_IDS for token in row]
    shape = [len(PROBE_IDS), len(PROBE_IDS[0])]
    return json.dumps({"inputs": [{"name": input_name, "shape": shape, "datatype": "INT64", "data": ids}]}).encode()


def check(base_url: str, metrics_url: str, model: str, input_name: str, timeout_s: float, state: Path) -> Verdict:
    """Whether the server at ``base_url`` should be left running, and why."""
    try:
        status, _ = _request(f"{base_url}/v2/health/live", timeout_s)
    except (_Timeout, OSError) as error:
        return Verdict(False, f"server not live: {error}")
    if status != 200:
        return Verdict(False, f"server not live: /v2/health/live answered {status}")

    try:
        status, body = _request(f"{base_url}/v2/models/{model}/infer", timeout_s, infer_body(input_name))
    except _Timeout:
        return _judge_progress(metrics_url, model, timeout_s, state)
    except OSError as error:
        return Verdict(False, f"inference on {model} failed: {error}")
    _remember(state, _read_exec_count(metrics_url, model, timeout_s))
    if status != 200:
        return Verdict(False, f"{model} answered {status}: {body.decode(errors='replace')[:300]}")
    return Verdict(True, f"{model} answered")


def _judge_progress(metrics_url: str, model: str, timeout_s: float, state: Path) -> Verdict:
    now = _read_exec_count(metrics_url, model, timeout_s)
    before = _recall(state)
    _remember(state, now)
    if now is None or before is None or now < before:  # unknown, first check, or the server restarted
        return Verdict(True, f"{model} did not answer within {timeout_s:g} s; no earlier count to compare")
    if now > before:
        return Verdict(True, f"{model} busy: no answer within {timeout_s:g} s, {now - before} batches since last check")
    return Verdict(False, f"{model} hung: no answer within {timeout_s:g} s and no batch run since the last check")


def _read_exec_count(metrics_url: str, model: str, timeout_s: float) -> int | None:
    try:
        status, body = _request(metrics_url, timeout_s)
    except (_Timeout, OSError):
        return None
    return exec_count(body.decode(errors="replace"), model) if status == 200 else None


def _recall(state: Path) -> int | None:
    try:
        return int(json.loads(state.read_text())["exec_count"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _remember(state: Path, count: int | None) -> None:
    if count is None:
        return
    # A check that cannot remember is still a check: the next one treats itself as the first.
    with contextlib.suppress(OSError):
        state.write_text(json.dumps({"exec_count": count}))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="the model to run: the one on the GPU")
    parser.add_argument("--input", required=True, help="its INT64 token-id input")
    parser.add_argument("--http-port", type=int, default=DEFAULTS.http_port)
    parser.add_argument("--metrics-port", type=int, default=DEFAULTS.metrics_port)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--timeout-s", type=float, default=5.0, help="per HTTP call; keep below the probe's timeout")
    parser.add_argument("--state", type=Path, default=Path("/tmp/distilbert-probe.json"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    verdict = check(
        f"http://{args.host}:{args.http_port}",
        f"http://{args.host}:{args.metrics_port}/metrics",
        args.model,
        args.input,
        args.timeout_s,
        args.state,
    )
    print(f"probe: {verdict.reason}", flush=True)
    return 0 if verdict.alive else 1


if __name__ == "__main__":
    sys.exit(main())
