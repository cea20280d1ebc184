"""Soak: half an hour or more of mixed traffic against the default export, one stub killed on purpose.

    python benchmarks/soak.py --checkpoint checkpoints/full-single --minutes 30 --json bench-results/soak.json

Exports the token and raw-text models with the defaults users get, starts them with ``build/launch.py``
(its stub watchdog on) and, for ``--minutes``, runs at once:

    steady     closed loop of well-formed requests: real English texts of varied length, one per request,
               to the token model; every answer compared with the text's unloaded answer
    text       a slower closed loop of raw texts to the text model, compared the same way
    malformed  a malformed request every ~2 s, of several kinds; each must be refused INVALID_ARGUMENT
    bursts     every ``--burst-every-s``, ``--burst-s`` of open-loop traffic at 3 × the measured capacity,
               each request with a 0.5 s deadline: answered right, refused (UNAVAILABLE), or expired
    fault      at ``--kill-at-s``, SIGKILL one Python-backend stub of the token model; the launcher
               restarts the server

Every request ends ``ok`` (right answer), ``wrong``, ``refused`` (UNAVAILABLE: a full queue or a queue
timeout), ``expired`` (its deadline passed), ``invalid`` (a malformed request refused INVALID_ARGUMENT,
as it must be) or ``error``; those while the injected fault is recovered are counted apart. Figures (the
Markdown rows of docs/RELIABILITY.md §6, and ``--json``): requests by outcome and phase; wrong answers;
restarts besides the injected one; RSS of the server and its stubs after warm-up and at the end of the
longest stretch without a restart; readiness at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from distilbert_serving import load_test
from distilbert_serving.contract import triton_refusal
from distilbert_serving.fair_share import text_input
from distilbert_serving.launch import STUB_NAME, child_processes, free_port

PROJECT = Path(__file__).resolve().parent.parent
LAUNCHER = PROJECT / "build" / "launch.py"
TOKEN, TEXT = "distilbert_classifier", "distilbert_text"
OUTCOMES = {"DEADLINE_EXCEEDED": "expired", "CANCELLED": "expired", "INVALID_ARGUMENT": "invalid"}  # by gRPC status
BURST_DEADLINE_S = 0.5


@dataclass
class Tally:
    """Outcomes of one phase of traffic: counts, answered latencies, and the errors' messages."""

    outcomes: Counter = field(default_factory=Counter)
    fault_outcomes: Counter = field(default_factory=Counter)
    latencies_s: list[float] = field(default_factory=list)
    messages: Counter = field(default_factory=Counter)

    def summary(self) -> dict:
        summary = {"outcomes": dict(self.outcomes), "during the injected fault": dict(self.fault_outcomes)}
        if self.latencies_s:
            p50, p99 = np.percentile(np.array(self.latencies_s) * 1e3, [50, 99])
            summary["answered p50 ms"], summary["answered p99 ms"] = round(float(p50)), round(float(p99))
        return {**summary, "error messages": dict(self.messages.most_common(8))}


class Soak:
    """The running soak: the launcher, the clients, the fault window and the tallies."""

    def __init__(self, args, repository: Path):
        self.args, self.repository = args, repository
        self.grpc_port, self.http_port, self.metrics_port = free_port(), free_port(), free_port()
        self.url = f"localhost:{self.grpc_port}"
        self.tallies: dict[str, Tally] = defaultdict(Tally)
        self.events: list[tuple[float, str]] = []  # (monotonic time, launcher line) of the lines that matter
        # From the kill until the steady callers are answered again (their gRPC channels reconnect only
        # after their backoff, seconds after the server is back), and 5 s more.
        self.fault_window: tuple[float, float | None] | None = None
        self.ready_again: float | None = None
        # Per burst: (its requests not answered: expired or refused, requests the server never computed).
        self.burst_drops: list[tuple[int, float]] = []
        self.launcher: subprocess.Popen | None = None
        self.ready = threading.Event()

    # The server -----------------------------------------------------------------------------------
    def start(self) -> None:
        command = [sys.executable, str(LAUNCHER), "--model-repository", str(self.repository), "--unrestricted"]
        command += ["--grpc-port", str(self.grpc_port), "--http-port", str(self.http_port)]
        command += ["--metrics-port", str(self.metrics_port), "--startup-timeout-s", "900"]
        self.launcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._read_launcher, daemon=True).start()
        if not self.ready.wait(timeout=900):
            raise SystemExit("the server did not become ready in 15 minutes")

    def _read_launcher(self) -> None:
        for line in self.launcher.stdout:
            if line.startswith(("ready:", "ready again:", "a Python-backend stub died", "tritonserver")):
                self.events.append((time.monotonic(), line.strip()))
                print(f"[launcher] {line.strip()}", flush=True)
            if line.startswith("ready:"):
                self.ready.set()
            if line.startswith("ready again:"):
                self.ready_again = time.monotonic()

    def server_pid(self) -> int | None:
        return next((pid for pid, _, cmd in child_processes(self.launcher.pid) if "tritonserver" in cmd), None)

    def kill_a_stub(self) -> None:
        live = [(pid, cmd) for pid, state, cmd in child_processes(self.server_pid()) if state != "Z"]
        stubs = [pid for pid, cmd in live if STUB_NAME in cmd and TOKEN in cmd]
        self.fault_window = (time.monotonic(), None)
        os.kill(stubs[0], signal.SIGKILL)
        print(f"[soak] killed stub {stubs[0]} of {TOKEN}", flush=True)

    def in_fault(self, at: float) -> bool:
        window = self.fault_window
        return window is not None and window[0] <= at and (window[1] is None or at <= window[1])

    def unanswered(self, phase: str) -> int:
        """Requests of ``phase`` that got no answer: past their deadline, or refused."""
        tally = self.tallies[phase]
        return sum(t["expired"] + t["refused"] for t in (tally.outcomes, tally.fault_outcomes))

    def refused_except(self, phase: str) -> int:
        return sum(t.outcomes["refused"] + t.fault_outcomes["refused"] for p, t in self.tallies.items() if p != phase)

    def never_computed(self) -> float | None:
        """Requests of the token model the server answered without a forward pass: cancelled, timed out or
        refused in Triton's queue (reasons CANCELED and REJECTED), or dropped by model.py."""
        try:
            metrics = load_test.model_metrics(f"http://localhost:{self.metrics_port}/metrics", TOKEN)
        except OSError:
            return None
        failures = ("nv_inference_request_failure:CANCELED", "nv_inference_request_failure:REJECTED")
        return sum(v for k, v in metrics.items() if k in failures or k.startswith("clf_requests_dropped_total"))

    def is_ready(self) -> bool:
        client = grpcclient.InferenceServerClient(self.url)
        try:
            return client.is_server_ready() and all(client.is_model_ready(model) for model in (TOKEN, TEXT))
        except InferenceServerException:
            return False

    def stop(self) -> int:
        if self.launcher.poll() is None:
            self.launcher.send_signal(signal.SIGTERM)
            try:
                self.launcher.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.launcher.kill()
        return self.launcher.wait()

    # The traffic ----------------------------------------------------------------------------------
    def record(self, phase: str, began: float, outcome: str, message: str = "") -> None:
        recovered = self.ready_again is not None and began > self.ready_again and outcome == "ok"
        if recovered and phase == "steady" and self.fault_window is not None and self.fault_window[1] is None:
            self.fault_window = (self.fault_window[0], time.monotonic() + 5.0)
        tally = self.tallies[phase]
        counts = tally.fault_outcomes if self.in_fault(began) or self.in_fault(time.monotonic()) else tally.outcomes
        counts[outcome] += 1
        if outcome == "ok":
            tally.latencies_s.append(time.monotonic() - began)
        elif message:
            tally.messages[message[:100]] += 1


def classify_error(error: BaseException) -> tuple[str, str]:
    """(outcome, message) of a failed call."""
    if isinstance(error, asyncio.TimeoutError):
        return "expired", "client deadline"
    if not isinstance(error, InferenceServerException):
        return "error", f"{type(error).__name__}: {error}"
    status, message = str(error.status()).rsplit(".", 1)[-1], error.message() or ""
    if status == "UNAVAILABLE" and triton_refusal(message) == "overloaded":
        return "refused", f"{status}: {message}"
    return OUTCOMES.get(status, "error"), f"{status}: {message}"


def malformed_requests(vocab_size: int) -> list[tuple[str, str, list]]:
    """(kind, model, inputs) of requests the models must refuse with INVALID_ARGUMENT."""

    def ids(rows):
        array = np.asarray(rows, dtype=np.int64)
        return [grpcclient.InferInput("input_ids", list(array.shape), "INT64").set_data_from_numpy(array)]

    return [
        ("id outside the vocabulary", TOKEN, ids([[101, vocab_size + 3, 102]])),
        ("negative id", TOKEN, ids([[101, -1, 102]])),
        ("513 tokens", TOKEN, ids(np.full((1, 513), 1000))),
        ("zero-length sequence", TOKEN, ids(np.zeros((1, 0)))),
        ("empty text", TEXT, [text_input([b""])]),
        ("text not UTF-8", TEXT, [text_input([b"\xff\xfe broken"])]),
    ]


async def soak(state: Soak, workload: load_test.Workload, texts: list[str]) -> dict:
    args = state.args
    token = load_test.LoadClient(state.url, TOKEN)
    client, outputs = token.client, token.outputs
    rng = random.Random(0)

    async def token_call(index: int, deadline_s: float) -> np.ndarray:
        return await token.infer(workload.ids[index], deadline_s)

    async def text_call(index: int, deadline_s: float) -> np.ndarray:
        request = [text_input([texts[index].encode()])]
        result = await asyncio.wait_for(client.infer(TEXT, request, outputs=outputs), timeout=deadline_s)
        return result.as_numpy("logits")

    async def judged(phase: str, call, index: int, deadline_s: float) -> None:
        began = time.monotonic()
        try:
            logits = await call(index, deadline_s)
        except Exception as error:  # every failure is a figure
            state.record(phase, began, *classify_error(error))
            await asyncio.sleep(0.05)  # a server that is down answers at once: no busy loop
            return
        right = np.abs(logits - workload.expected[index]).max() <= load_test.TOLERANCE
        state.record(phase, began, "ok" if right else "wrong", "" if right else f"logits differ for text {index}")

    # Expected answers, one at a time at no load; and the capacity, for the bursts.
    await load_test.measure_expected(token, workload)
    capacity = (await load_test.closed_loop(token, workload, args.concurrency, 20.0)).answered_per_s
    print(f"[soak] capacity at concurrency {args.concurrency}: {capacity:.1f} requests/s", flush=True)

    end = time.monotonic() + args.minutes * 60
    soak_started = time.monotonic()
    memory: list[tuple[float, float, int | None]] = []  # (seconds into the soak, RSS MiB, server pid)

    async def closed(phase: str, call, callers: int, pause_s: float) -> None:
        async def caller():
            while time.monotonic() < end:
                await judged(phase, call, rng.randrange(len(workload.ids)), args.deadline_s)
                if pause_s:
                    await asyncio.sleep(pause_s)

        await asyncio.gather(*(caller() for _ in range(callers)))

    async def malformed() -> None:
        kinds = malformed_requests(args.vocab_size)
        while time.monotonic() < end:
            kind, model, inputs = kinds[rng.randrange(len(kinds))]
            began = time.monotonic()
            try:
                await asyncio.wait_for(client.infer(model, inputs), timeout=args.deadline_s)
                state.record("malformed", began, "wrong", f"{kind}: answered")
            except Exception as error:
                outcome, message = classify_error(error)
                state.record("malformed", began, "ok" if outcome == "invalid" else outcome, f"{kind}: {message}")
            await asyncio.sleep(rng.uniform(1.0, 3.0))

    async def bursts() -> None:
        while time.monotonic() + args.burst_every_s < end:
            await asyncio.sleep(args.burst_every_s - args.burst_s)
            rate, burst_end, tasks = 3 * capacity, time.monotonic() + args.burst_s, []
            print(f"[soak] burst: {args.burst_s:.0f} s at {rate:.0f}/s, {BURST_DEADLINE_S} s deadline", flush=True)
            pid, before = state.server_pid(), state.never_computed()
            unanswered_before, others_refused_before = state.unanswered("bursts"), state.refused_except("bursts")
            while time.monotonic() < burst_end:
                index = rng.randrange(len(workload.ids))
                tasks.append(asyncio.create_task(judged("bursts", token_call, index, BURST_DEADLINE_S)))
                await asyncio.sleep(rng.expovariate(rate))
            await asyncio.gather(*tasks)
            # The server drops a request whose call ended when it next looks at it: let the queue drain.
            await asyncio.sleep(5)
            after, unanswered = state.never_computed(), state.unanswered("bursts") - unanswered_before
            # The other phases' refusals in the meantime are in the server's count too, not the bursts'.
            others_refused = state.refused_except("bursts") - others_refused_before
            skipped = None if None in (before, after) else after - before - others_refused
            if pid == state.server_pid() and skipped is not None and unanswered:
                state.burst_drops.append((unanswered, skipped))
                print(f"[soak] burst: {unanswered} not answered in time, {skipped:.0f} never computed", flush=True)

    async def fault() -> None:
        await asyncio.sleep(max(0.0, soak_started + args.kill_at_s - time.monotonic()))
        state.kill_a_stub()

    async def sample_memory() -> None:
        while time.monotonic() < end:
            pid = state.server_pid()
            # Not while the injected fault is recovered: a dead stub's memory is gone, not freed.
            if pid is not None and not state.in_fault(time.monotonic()):
                memory.append((time.monotonic() - soak_started, load_test.rss_mib(pid), pid))
            await asyncio.sleep(10)

    async def progress() -> None:
        while time.monotonic() < end:
            await asyncio.sleep(60)
            counts = {phase: dict(t.outcomes) for phase, t in state.tallies.items()}
            minute = (time.monotonic() - soak_started) / 60
            print(f"[soak] {minute:.0f} min: {counts}; RSS {memory[-1][1] if memory else 0:.0f} MiB", flush=True)

    jobs = [closed("steady", token_call, args.concurrency, 0.0), closed("text", text_call, 2, 0.2), malformed()]
    jobs += [sample_memory(), progress(), *([bursts()] if args.burst_every_s > 0 else [])]
    jobs += [fault()] if args.kill_at_s >= 0 else []
    try:
        await asyncio.gather(*jobs)
    finally:
        await client.close()
    await asyncio.sleep(2)
    return {"capacity_per_s": capacity, "memory": memory, "soak_s": time.monotonic() - soak_started}


def memory_growth(samples: list[tuple[float, float, int | None]], warmup_s: float) -> dict:
    """RSS growth over the longest stretch served by one server process, after ``warmup_s`` into it."""
    stretches: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for at, rss, pid in samples:
        stretches[pid].append((at, rss))
    longest = max(stretches.values(), key=lambda s: s[-1][0] - s[0][0])
    begun, stretch_min = longest[0][0], round((longest[-1][0] - longest[0][0]) / 60, 1)
    after = [(at, rss) for at, rss in longest if at - begun >= warmup_s]
    if len(after) < 2:
        return {"stretch_min": stretch_min, "growth_pct": None}
    base, last = after[0][1], after[-1][1]
    return {
        "stretch_min": stretch_min,
        "measured_min": round((after[-1][0] - after[0][0]) / 60, 1),
        "rss_after_warmup_mib": round(base),
        "rss_end_mib": round(last),
        "rss_peak_mib": round(max(rss for _, rss in after)),
        "growth_pct": round((last / base - 1) * 100, 2),
    }


def rows(report: dict) -> str:
    """The figures as the Markdown rows docs/RELIABILITY.md quotes."""
    lines = ["| phase | ok | wrong | refused | expired | other errors | during the injected fault | p50 / p99 ms |"]
    lines.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for phase, tally in report["phases"].items():
        o = tally["outcomes"]
        latency = f"{tally.get('answered p50 ms', '-')} / {tally.get('answered p99 ms', '-')}"
        others = sum(v for k, v in o.items() if k not in ("ok", "wrong", "refused", "expired"))
        lines.append(
            f"| {phase} | {o.get('ok', 0)} | {o.get('wrong', 0)} | {o.get('refused', 0)} | {o.get('expired', 0)} "
            f"| {others} | {sum(tally['during the injected fault'].values())} | {latency} |"
        )
    m, drops = report["memory"], report["bursts_unanswered_never_computed"]
    unanswered, skipped = sum(e for e, _ in drops), sum(s for _, s in drops)
    lines += [
        "",
        f"bursts with a {BURST_DEADLINE_S} s deadline: {unanswered} not answered in time (expired or refused), "
        f"{skipped:.0f} never computed ({skipped / max(unanswered, 1):.0%}; the {len(drops)} bursts without a restart)",
        f"soak {report['minutes']:.0f} min; wrong answers {report['wrong']}; restarts besides the injected one "
        f"{report['unexpected_restarts']}; RSS {m.get('rss_after_warmup_mib')} -> {m.get('rss_end_mib')} MiB "
        f"({m.get('growth_pct')} %) over {m.get('measured_min')} min of one server; ready at the end "
        f"{report['ready_at_end']}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=PROJECT / "checkpoints" / "full-single")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--texts", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8, help="callers of the steady closed loop")
    parser.add_argument("--deadline-s", type=float, default=30.0, help="deadline of the steady and text calls")
    parser.add_argument("--burst-every-s", type=float, default=300.0, help="0: no bursts")
    parser.add_argument("--burst-s", type=float, default=20.0)
    parser.add_argument("--kill-at-s", type=float, default=420.0, help="when the stub is killed; -1: never")
    parser.add_argument("--warmup-s", type=float, default=180.0, help="of a server, before its RSS counts")
    parser.add_argument(
        "--serving", nargs="*", default=[], metavar="KNOB=VALUE", help="export knobs other than the defaults"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    from transformers import AutoConfig

    from distilbert_serving.corpus import english_texts
    from distilbert_serving.export import write_model, write_text_model

    args.vocab_size = AutoConfig.from_pretrained(args.checkpoint).vocab_size
    texts = english_texts(args.texts)
    workload = load_test.Workload.from_texts(args.checkpoint, args.texts)
    repository, serving = Path(tempfile.mkdtemp(prefix="soak-repository-")), load_test.serving_config(args.serving)
    write_model(args.checkpoint, repository, serving)  # the default export, or it with --serving changes
    write_text_model(args.checkpoint, repository, serving)
    state = Soak(args, repository)
    state.start()
    try:
        result = asyncio.run(soak(state, workload, texts))
        ready = state.is_ready()
    finally:
        code = state.stop()
    restarts = sum(line.startswith("a Python-backend stub died") for _, line in state.events)
    report = {
        "minutes": result["soak_s"] / 60,
        "capacity_per_s": round(result["capacity_per_s"], 1),
        "phases": {phase: tally.summary() for phase, tally in state.tallies.items()},
        "wrong": sum(t.outcomes["wrong"] + t.fault_outcomes["wrong"] for t in state.tallies.values()),
        "unexpected_errors": sum(t.outcomes["error"] for t in state.tallies.values()),
        "unexpected_restarts": restarts - (1 if args.kill_at_s >= 0 else 0),  # besides the injected one
        "memory": memory_growth(result["memory"], args.warmup_s),
        "bursts_unanswered_never_computed": [list(b) for b in state.burst_drops],
        "ready_at_end": ready,
        "launcher_exit_code": code,
        "launcher_events": [line for _, line in state.events],
    }
    print(rows(report), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    good = report["wrong"] == 0 and report["unexpected_restarts"] == 0 and ready
    growth = report["memory"].get("growth_pct")
    return 0 if good and growth is not None and growth < 5.0 else 1


if __name__ == "__main__":
    sys.exit(main())
