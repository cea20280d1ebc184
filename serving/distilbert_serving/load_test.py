"""Bounded overload test: closed and open loop at 2 × saturation, with figures.

    # start its own server on the full-size offline model and run the documented test (~9 min):
    python -m distilbert_serving.load_test --launch --checkpoint checkpoints/full-single --duration-s 180

    # or against a running server (pass its pid for the memory figures):
    python -m distilbert_serving.load_test --url localhost:8001 --server-pid 1234 --concurrency 32 --rate 40

Steps: expected answers (every text once, one at a time) → saturation (closed loop at rising
concurrency; saturation = the smallest concurrency within 90 % of the best throughput, saturation
rate = that best throughput) → closed loop at 2 × saturation concurrency → open loop at 2 × the
saturation rate. Each request is one real English text (``corpus``). Every answer is one of:

    answered   logits equal the unloaded answer (max |Δ| ≤ 1e-4)
    rejected   UNAVAILABLE from Triton's queue policy ("Exceeds maximum queue size" or
               "Request timeout expired"): the caller may retry elsewhere or later
    wrong      answered with different logits
    expired    (the deadline run) past the caller's deadline, or answered CANCELLED at once by the model,
               whose deadline stamp showed it would pass before the answer came
    error      anything else

Memory: VmRSS of the server and its stubs (/proc), after a warm-up run at the same load and at the
end; growth = end ÷ after-warm-up − 1. The load generator shares the server's CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import random
import re
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.grpc.aio import InferenceServerClient
from tritonclient.utils import InferenceServerException

from distilbert_client._core import server_deadline

from .contract import Reason, reason_of, triton_refusal
from .launch import child_processes, options_on_free_ports

TOLERANCE = 1e-4


@dataclass
class Workload:
    """One request per text: ``[1, length]`` ids and, once measured, the unloaded answer."""

    ids: list[np.ndarray]
    expected: list[np.ndarray | None] = field(default_factory=list)

    @classmethod
    def from_texts(cls, tokenizer_folder: Path, count: int, max_length: int = 512) -> Workload:
        from transformers import AutoTokenizer

        from .corpus import english_texts

        tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder)
        texts = english_texts(count)
        encoded = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
        return cls(ids=[np.array([row], dtype=np.int64) for row in encoded])


@dataclass
class Latency:
    """Milliseconds from sending a call to its outcome, over a group of calls (None where there were none)."""

    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None

    @classmethod
    def of(cls, seconds: list[float]) -> Latency:
        if not seconds:
            return cls()
        times = np.array(seconds) * 1e3
        p50, p99 = np.percentile(times, [50, 99])
        return cls(float(p50), float(p99), float(times.max()))

    def text(self, separator: str = ", ") -> str:
        """``p50 … ms, p99 … ms, max … ms``, ``-`` for a figure there is none of."""
        values = {"p50": self.p50_ms, "p99": self.p99_ms, "max": self.max_ms}
        return separator.join(f"{name} {milliseconds(value)} ms" for name, value in values.items())


def milliseconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


@dataclass
class Tally:
    """What a group of calls got over ``seconds``: answered as expected, answered wrong, or another error
    (counted by message in ``error_messages``); ``latency`` is the answered calls'."""

    name: str
    seconds: float = 0.0
    sent: int = 0
    answered: int = 0
    wrong: int = 0
    errors: int = 0
    error_messages: dict[str, int] = field(default_factory=dict)
    latency: Latency = field(default_factory=Latency)


@dataclass
class Figures(Tally):
    """A load run's tally, with the calls Triton's queue policy refused, those past their deadline, and the
    server's memory."""

    rejected: int = 0
    # Of ``rejected``: refused because the queue was full (the rest waited their queue timeout).
    queue_full: int = 0
    # Past the caller's deadline (``--deadline-s``) before an answer came.
    expired: int = 0
    answered_per_s: float = 0.0
    rejected_latency: Latency = field(default_factory=Latency)
    rss_after_warmup_mib: float | None = None
    rss_end_mib: float | None = None
    rss_peak_mib: float | None = None
    rss_growth_pct: float | None = None
    # Deadline runs: the server's counters over the run (requests it never computed, and why).
    server: dict = field(default_factory=dict)

    def line(self) -> str:
        text = (
            f"{self.name}: {self.sent} sent in {self.seconds:.0f} s: answered {self.answered} "
            f"({self.answered_per_s:.1f}/s), rejected {self.rejected}, wrong {self.wrong}, errors {self.errors}; "
            f"answered {self.latency.text(' ')}; rejected p99 {milliseconds(self.rejected_latency.p99_ms)} ms"
        )
        if self.rss_growth_pct is not None:
            text += (
                f"; RSS after warm-up {self.rss_after_warmup_mib:.0f} MiB, end {self.rss_end_mib:.0f} MiB "
                f"(growth {self.rss_growth_pct:+.2f} %), peak {self.rss_peak_mib:.0f} MiB"
            )
        if self.expired or self.server:
            text += f"; expired {self.expired}; server {self.server}"
        if self.error_messages:
            text += f"; error messages: {self.error_messages}"
        return text


def model_metrics(metrics_url: str, model: str) -> dict[str, float]:
    """The server's Prometheus samples for ``model``, summed over versions: ``{name: value}``, or
    ``{name:label: value}`` for a sample with a ``reason`` or ``stage`` label (e.g.
    ``nv_inference_request_failure:CANCELED``, ``clf_execute_stage_duration_us_total:decode``)."""
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        text = response.read().decode()
    metrics: dict[str, float] = {}
    for name, labels, value in re.findall(r"^(\w+)\{(.*)\} ([0-9.e+]+)$", text, flags=re.M):
        if f'model="{model}"' in labels:
            label = re.search(r'(?:reason|stage)="(\w+)"', labels)
            key = f"{name}:{label.group(1)}" if label else name
            metrics[key] = metrics.get(key, 0.0) + float(value)
    return metrics


def rss_mib(pid: int) -> float:
    """VmRSS of ``pid`` and its children (the Python-backend stubs), MiB."""
    total_kib = 0
    for process in [pid, *(child for child, state, _ in child_processes(pid) if state != "Z")]:
        try:
            for line in Path(f"/proc/{process}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
        except OSError:
            continue
    return total_kib / 1024


class Recorder:
    def __init__(self, name: str, workload: Workload, deadline_s: float | None = None):
        self.workload = workload
        self.deadline_s = deadline_s
        self.figures = Figures(name)
        self.answered_s: list[float] = []
        self.rejected_s: list[float] = []
        self.messages: Counter = Counter()

    def record(self, index: int, logits: np.ndarray | None, error: Exception | None, seconds: float) -> None:
        figures = self.figures
        figures.sent += 1
        if error is None:
            expected = self.workload.expected[index]
            if expected is None or np.abs(logits - expected).max() <= TOLERANCE:
                figures.answered += 1
                self.answered_s.append(seconds)
            else:
                figures.wrong += 1
            return
        message = error.message() if isinstance(error, InferenceServerException) else repr(error)
        status = str(error.status()) if isinstance(error, InferenceServerException) else type(error).__name__
        if status.endswith("UNAVAILABLE") and triton_refusal(message or "") == "overloaded":
            figures.rejected += 1
            figures.queue_full += "queue size" in message
            self.rejected_s.append(seconds)
        elif self.deadline_s is not None and (
            isinstance(error, asyncio.TimeoutError) or reason_of(message or "") == Reason.EXPIRED
        ):
            figures.expired += 1
        else:
            figures.errors += 1
            self.messages[f"{status}: {(message or '')[:120]}"] += 1

    def finish(self, seconds: float) -> Figures:
        figures = self.figures
        figures.seconds = seconds
        figures.answered_per_s = figures.answered / seconds if seconds else 0.0
        figures.error_messages = dict(self.messages)
        figures.latency, figures.rejected_latency = Latency.of(self.answered_s), Latency.of(self.rejected_s)
        return figures


def deadline_arguments(deadline_s: float | None, parameters: dict | None = None) -> dict:
    """``tritonclient`` infer arguments that carry a call's deadline to the server as the client library
    sends it (``server_deadline``), beside the request's other ``parameters``."""
    arguments = server_deadline(deadline_s)
    arguments["parameters"] = {**(parameters or {}), **arguments.get("parameters", {})} or None
    return arguments


class LoadClient:
    """An asyncio gRPC client for one model; TLS when ``root_certificates`` (a PEM file) is given."""

    def __init__(self, url: str, model: str, root_certificates: str | None = None, timeout_s: float = 30.0):
        kwargs = {"ssl": True, "root_certificates": root_certificates} if root_certificates else {}
        self.client = InferenceServerClient(url, **kwargs)
        self.model = model
        self.timeout_s = timeout_s
        self.outputs = [grpcclient.InferRequestedOutput("logits")]

    async def infer(self, ids: np.ndarray, deadline_s: float | None = None) -> np.ndarray:
        request = grpcclient.InferInput("input_ids", list(ids.shape), "INT64")
        request.set_data_from_numpy(ids)
        # The deadline is asyncio's, not gRPC's: tritonclient.grpc.aio with client_timeout set delays
        # ~5 % of calls by 500 ms on this machine (measured; see RELIABILITY.md). Cancelling the
        # awaiting task cancels the call, which the server sees.
        result = await asyncio.wait_for(
            self.client.infer(self.model, [request], outputs=self.outputs, **deadline_arguments(deadline_s)),
            timeout=deadline_s or self.timeout_s,
        )
        return result.as_numpy("logits")

    async def timed(self, recorder: Recorder, index: int) -> None:
        started = time.perf_counter()
        try:
            logits, error = await self.infer(recorder.workload.ids[index], recorder.deadline_s), None
        except Exception as raised:  # every failure is a figure, none may stop the run
            logits, error = None, raised
        recorder.record(index, logits, error, time.perf_counter() - started)

    async def close(self) -> None:
        await self.client.close()


async def measure_expected(client: LoadClient, workload: Workload) -> None:
    """The answer to every text at no load, one request at a time."""
    workload.expected = [await client.infer(ids) for ids in workload.ids]


async def closed_loop(
    client: LoadClient, workload: Workload, concurrency: int, duration_s: float, name: str = "closed"
) -> Figures:
    """``concurrency`` callers, each sending its next request when the last one is answered."""
    recorder = Recorder(name, workload)
    rng = random.Random(0)
    end = time.perf_counter() + duration_s

    async def caller() -> None:
        while time.perf_counter() < end:
            await client.timed(recorder, rng.randrange(len(workload.ids)))

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return recorder.finish(time.perf_counter() - started)


async def open_loop(
    client: LoadClient,
    workload: Workload,
    rate: float,
    duration_s: float,
    name: str = "open",
    deadline_s: float | None = None,
) -> Figures:
    """Requests sent at ``rate`` per second (Poisson arrivals) whether or not earlier ones were answered."""
    recorder = Recorder(name, workload, deadline_s)
    rng = random.Random(1)
    tasks, started = [], time.perf_counter()
    next_at = started
    while next_at < started + duration_s:
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        tasks.append(asyncio.create_task(client.timed(recorder, rng.randrange(len(workload.ids)))))
        next_at += rng.expovariate(rate)
    await asyncio.gather(*tasks)
    return recorder.finish(time.perf_counter() - started)


async def with_memory(run, pid: int | None, warmup) -> Figures:
    """Run ``warmup`` then ``run``, sampling the server's RSS every second during ``run``."""
    if warmup is not None:
        await warmup
    if pid is None:
        return await run
    baseline, peak = rss_mib(pid), 0.0
    task = asyncio.ensure_future(run)
    while not task.done():
        peak = max(peak, rss_mib(pid))
        await asyncio.wait([task], timeout=1.0)
    figures = task.result()
    end = rss_mib(pid)
    figures.rss_after_warmup_mib, figures.rss_end_mib, figures.rss_peak_mib = baseline, end, max(peak, end)
    figures.rss_growth_pct = (end / baseline - 1) * 100
    return figures


async def deadline_run(client: LoadClient, workload: Workload, rate: float, args) -> Figures:
    """Open loop at ``rate`` with every request's deadline ``args.deadline_s``: of the requests whose
    deadline passed, how many the server never computed (its counters, before and after)."""
    before = model_metrics(args.metrics_url, args.model)
    name = f"open loop {rate:.1f}/s, {args.deadline_s:g} s deadline"
    figures = await open_loop(client, workload, rate, args.duration_s, name=name, deadline_s=args.deadline_s)
    # The server drops a request whose call ended when it next looks at it: let its queue drain.
    for _ in range(120):
        if not model_metrics(args.metrics_url, args.model).get("nv_inference_pending_request_count"):
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(2.0)
    after = model_metrics(args.metrics_url, args.model)
    delta = {key: after.get(key, 0.0) - before.get(key, 0.0) for key in after}
    dropped = sum(v for k, v in delta.items() if k.startswith("clf_requests_dropped_total"))
    cancelled = delta.get("nv_inference_request_failure:CANCELED", 0.0)
    # REJECTED counts queue timeouts (expired) and, in some releases, full-queue refusals (never expired):
    # one 2.51 run counted 7 REJECTED beside 814 refusals the client saw, so it is floored at 0.
    timed_out = max(0.0, delta.get("nv_inference_request_failure:REJECTED", 0.0) - figures.queue_full)
    expired = figures.expired + (figures.rejected - figures.queue_full)
    never_computed = cancelled + timed_out + dropped
    figures.server = {
        "computed (success)": delta.get("nv_inference_request_success", 0.0),
        "cancelled in queue": cancelled,
        "timed out in queue": timed_out,
        "dropped by model.py": dropped,
        "expired (client)": expired,
        "expired never computed %": round(100 * never_computed / expired, 1) if expired else None,
    }
    return figures


async def find_saturation(
    client: LoadClient, workload: Workload, levels: tuple[int, ...], step_s: float
) -> tuple[int, float, list[Figures]]:
    """(saturation concurrency, saturation rate, the figures of each level)."""
    steps = []
    for concurrency in levels:
        steps.append(await closed_loop(client, workload, concurrency, step_s, name=f"closed c={concurrency}"))
        print(steps[-1].line(), flush=True)
    best = max(step.answered_per_s for step in steps)
    saturation = next(c for c, step in zip(levels, steps, strict=True) if step.answered_per_s >= 0.9 * best)
    return saturation, best, steps


async def run(args) -> dict:
    client = LoadClient(args.url, args.model, args.root_certificates, timeout_s=args.client_timeout_s)
    try:
        workload = Workload.from_texts(args.tokenizer, args.texts)
        await measure_expected(client, workload)
        report: dict = {"texts": len(workload.ids), "mean_tokens": float(np.mean([w.shape[1] for w in workload.ids]))}
        if args.concurrency and args.rate:
            saturation, rate = args.concurrency // 2, args.rate / 2
        else:
            levels = tuple(int(c) for c in args.levels.split(","))
            saturation, rate, steps = await find_saturation(client, workload, levels, args.step_s)
            report["saturation_steps"] = [asdict(step) for step in steps]
        report["saturation_concurrency"], report["saturation_rate"] = saturation, rate
        print(f"saturation: concurrency {saturation}, {rate:.1f} answered/s", flush=True)

        concurrency = 2 * saturation
        closed = await with_memory(
            closed_loop(client, workload, concurrency, args.duration_s, name=f"closed loop c={concurrency}"),
            args.server_pid,
            closed_loop(client, workload, concurrency, args.warmup_s, name="warm-up"),
        )
        print(closed.line(), flush=True)
        opened = await with_memory(
            open_loop(client, workload, 2 * rate, args.duration_s, name=f"open loop {2 * rate:.1f}/s"),
            args.server_pid,
            open_loop(client, workload, 2 * rate, args.warmup_s, name="warm-up"),
        )
        print(opened.line(), flush=True)
        report["closed_loop"], report["open_loop"] = asdict(closed), asdict(opened)
        if args.deadline_s is not None and args.metrics_url:
            deadline = await deadline_run(client, workload, 2 * rate, args)
            print(deadline.line(), flush=True)
            report["deadline_open_loop"] = asdict(deadline)
        return report
    finally:
        await client.close()


def serving_config(items: list[str]):
    """The default export's ``ServingConfig`` with ``KNOB=VALUE`` items (``--serving``) changed."""
    from .export import ServingConfig

    types = {field.name: field.type for field in dataclasses.fields(ServingConfig)}
    parse = {"int": int, "bool": lambda value: value.lower() == "true"}
    knobs = dict(item.split("=", 1) for item in items)
    return ServingConfig(**{name: parse.get(types[name], str)(value) for name, value in knobs.items()})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="localhost:8001", help="gRPC address of a running server")
    parser.add_argument("--server-pid", type=int, help="tritonserver's pid, for the memory figures")
    parser.add_argument("--launch", action="store_true", help="start a server of its own on --checkpoint")
    parser.add_argument("--checkpoint", type=Path, default=Path("checkpoints/full-single"))
    parser.add_argument("--tokenizer", type=Path, help="tokenizer folder (default: --checkpoint)")
    parser.add_argument("--model", default="distilbert_classifier")
    parser.add_argument("--root-certificates", help="PEM CA of a TLS gRPC server")
    parser.add_argument("--texts", type=int, default=300)
    parser.add_argument("--levels", default="1,2,4,8,16,32,64", help="concurrencies tried to find saturation")
    parser.add_argument("--step-s", type=float, default=15.0, help="seconds per saturation level")
    parser.add_argument("--concurrency", type=int, help="the overload concurrency (skips the saturation search)")
    parser.add_argument("--rate", type=float, help="the overload rate, requests/s (skips the saturation search)")
    parser.add_argument("--duration-s", type=float, default=180.0, help="seconds of each overload run")
    parser.add_argument("--warmup-s", type=float, default=20.0, help="seconds at the same load before measuring")
    parser.add_argument("--client-timeout-s", type=float, default=30.0)
    parser.add_argument(
        "--deadline-s",
        type=float,
        help="then an open loop at 2 × the saturation rate with this deadline per request (needs --metrics-url)",
    )
    parser.add_argument("--metrics-url", help="the server's Prometheus metrics (set by --launch)")
    parser.add_argument(
        "--serving", nargs="*", default=[], metavar="KNOB=VALUE",
        help="with --launch: export knobs other than the defaults, e.g. max_batch_size=32 (see build/export.py)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args(argv)
    args.tokenizer = args.tokenizer or args.checkpoint

    server = None
    if args.launch:
        from .export import write_model
        from .launch import LocalServer

        repository = Path(tempfile.mkdtemp(prefix="load-test-repository-"))
        # The defaults users run (two instances and a bounded queue), or a variant.
        write_model(args.checkpoint, repository, serving_config(args.serving))
        options = options_on_free_ports(repository)
        server = LocalServer(options).start(timeout_s=600)
        args.url, args.server_pid, args.metrics_url = server.grpc_url, server.process.pid, server.metrics_url
        print(f"server pid {args.server_pid} on {args.url} (log {server.log_path})", flush=True)
    try:
        report = asyncio.run(run(args))
        if server is not None:
            report["server_alive"] = server.process.poll() is None
            report["server_ready"] = server.is_ready()
            report["stubs_healthy"] = server.stubs_healthy()
            print(
                f"afterwards: alive {report['server_alive']}, ready {report['server_ready']}, "
                f"stubs healthy {report['stubs_healthy']}"
            )
    finally:
        if server is not None:
            server.stop()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    failed = sum(report[run]["wrong"] + report[run]["errors"] for run in ("closed_loop", "open_loop"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
