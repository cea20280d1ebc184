"""Rollouts under load: what steady callers of the client library see while a new version goes in.

    # one server of its own (with an admin key): a new checkpoint loaded as version 2 while it serves,
    # then a bad one as version 3, which must be refused while version 2 serves on:
    python -m distilbert_serving.rollout version --checkpoint checkpoints/tiny-single \
        --new-checkpoint <other weights, same labels and tokenizer> --bad-checkpoint <e.g. other labels>
    # two servers of their own, four callers, each server stopped (SIGTERM) and started again in turn:
    python -m distilbert_serving.rollout restart --checkpoint checkpoints/tiny-single --servers 2 --callers 4
    # the same behind the shipped Envoy proxy (docker/k8s/components/grpc-proxy/envoy.yaml, on loopback):
    python -m distilbert_serving.rollout restart --checkpoint checkpoints/tiny-single --proxy

Callers classify real English texts through one ``Classifier`` (``restart``: balancing over every
server, ``round_robin``; with ``--proxy``, one connection to the proxy), before (``--before-s``) and
during the rollout, then a last ``--after-s``.
Every call is one of: ``ok`` (the label and logits that the version which answered gives, max |Δ| ≤
1e-4), ``wrong`` (answered otherwise), or the name of the error it raised. Printed: calls, failures and
wrong answers per phase, p50/p99 latency of the answered calls, and how long each switch took; with
``--proxy``, how often the proxy retried and what its health checks saw.
The servers serve the token model only, one CPU instance each.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from distilbert_client import Classification, Classifier, ClassifierError

from .launch import LocalServer, options_on_free_ports
from .load_test import Latency

TOLERANCE = 1e-4


@dataclass
class Call:
    began: float
    seconds: float
    text: str
    answer: Classification | None  # None: failed
    error: str = ""  # the error's class name


# The answers each version gives: version → text → Classification.
Expected = dict[str, dict[str, Classification]]


def answers(classifier: Classifier, texts: list[str]) -> dict[str, Classification]:
    """``classifier``'s answer to each text, one at a time."""
    return {text: classifier.classify(text) for text in texts}


def outcome(call: Call, expected: Expected) -> str:
    """The call's outcome: "ok" (the answering version's label and logits, max |Δ| ≤ 1e-4), "wrong", or its error."""
    if call.answer is None:
        return call.error
    reference = expected.get(call.answer.model_version, {}).get(call.text)
    close = reference is not None and np.allclose(call.answer.logits, reference.logits, atol=TOLERANCE, rtol=0)
    return "ok" if close and call.answer.label == reference.label else "wrong"


class Callers:
    """``count`` threads classifying ``texts`` in turn through ``classifier`` until stopped, each call recorded."""

    def __init__(self, classifier: Classifier, texts: list[str], count: int, pause_s: float = 0.0) -> None:
        self.classifier, self.texts, self.pause_s = classifier, texts, pause_s
        self.calls: list[Call] = []
        self.errors: Counter[str] = Counter()  # error messages, for the report
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(count)]

    def __enter__(self) -> Callers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)

    def _run(self, offset: int) -> None:
        n = offset
        while not self._stop.is_set():
            text = self.texts[n % len(self.texts)]
            n += 1
            began = time.monotonic()
            try:
                call = Call(began, 0.0, text, self.classifier.classify(text))
            except ClassifierError as error:
                call = Call(began, 0.0, text, None, type(error).__name__)
                self.errors[f"{call.error}: {error.message}"] += 1
            call.seconds = time.monotonic() - began
            self.calls.append(call)
            if self.pause_s:
                time.sleep(self.pause_s)

    def first_answer_from(self, version: str) -> float | None:
        """When the first call answered by ``version`` began (monotonic seconds), or None."""
        return min((c.began for c in self.calls if c.answer and c.answer.model_version == version), default=None)


@dataclass
class Switch:
    """One server taken out and brought back: seconds from SIGTERM to its exit, and from its start to ready."""

    server: int
    stop_s: float
    start_s: float


@dataclass
class Phase:
    name: str
    calls: int
    failed: int
    wrong: int
    latency: Latency  # of the answered calls
    outcomes: dict = field(default_factory=dict)


def phase(name: str, calls: list[Call], start: float, end: float, expected: Expected) -> Phase:
    """The figures of the calls that began within [start, end)."""
    inside = [call for call in calls if start <= call.began < end]
    outcomes = Counter(outcome(call, expected) for call in inside)
    failed = sum(count for outcome, count in outcomes.items() if outcome not in ("ok", "wrong"))
    latency = Latency.of([call.seconds for call in inside if call.answer])
    return Phase(name, len(inside), failed, outcomes["wrong"], latency, dict(outcomes))


def restart(server: LocalServer, index: int, timeout_s: float = 240.0) -> Switch:
    """Stop ``server`` the way an orchestrator does (SIGTERM, in-flight requests finish) and start it again."""
    began = time.monotonic()
    server.stop()
    stopped = time.monotonic()
    server.start(timeout_s=timeout_s)
    return Switch(index, round(stopped - began, 2), round(time.monotonic() - stopped, 2))


def rolling_restart(servers: list[LocalServer], settle_s: float) -> list[Switch]:
    """Each server in turn restarted, ``settle_s`` after each for the callers' connections to come back."""
    switches = []
    for index, server in enumerate(servers):
        switches.append(restart(server, index))
        time.sleep(settle_s)
    return switches


@dataclass(frozen=True)
class Load:
    """The steady callers (each pausing ``pause_s`` between calls) and how long they run: before the rollout,
    after each server is back, and after the rollout."""

    callers: int = 4
    pause_s: float = 0.0
    before_s: float = 10.0
    settle_s: float = 2.0
    after_s: float = 5.0


def restart_under_load(
    classifier: Classifier, servers: list[LocalServer], texts: list[str], load: Load
) -> tuple[list[Phase], list[Switch], Counter]:
    """Steady callers of ``texts`` through ``classifier`` while each server is restarted in turn:
    (phases, switches, error messages)."""
    expected = {"1": answers(classifier, texts)}
    with Callers(classifier, texts, load.callers, load.pause_s) as callers:
        begin = time.monotonic()
        time.sleep(load.before_s)
        rollout = time.monotonic()
        switches = rolling_restart(servers, settle_s=load.settle_s)
        after = time.monotonic()
        time.sleep(load.after_s)
    return phases(callers.calls, (begin, rollout, after, time.monotonic()), expected), switches, callers.errors


def report(phases: list[Phase], switches: list[Switch], errors: Counter) -> str:
    lines = ["phase     calls  failed  wrong  p50 ms  p99 ms"]

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    lines += [
        f"{p.name:<8} {p.calls:>6} {p.failed:>7} {p.wrong:>6} {ms(p.latency.p50_ms):>7} {ms(p.latency.p99_ms):>7}"
        for p in phases
    ]
    lines += [
        f"server {s.server}: stopped {s.stop_s} s after SIGTERM, ready {s.start_s} s after start" for s in switches
    ]
    lines += [f"{count} × {message}" for message, count in errors.most_common(5)]
    return "\n".join(lines)


def phases(calls: list[Call], marks: tuple[float, float, float, float], expected: Expected) -> list[Phase]:
    """Before, during and after the rollout, from the marks (begin, rollout starts, rollout ends, end)."""
    begin, rollout, after, end = marks
    names = (("before", begin, rollout), ("during", rollout, after), ("after", after, end))
    return [phase(name, calls, start, stop, expected) for name, start, stop in names]


def tiny_repository(checkpoint: Path, model: str, version: int = 1, repository: Path | None = None) -> Path:
    """A repository holding ``checkpoint`` as ``version`` of the token model ``model``, one CPU instance."""
    from .export import ServingConfig, write_model

    repository = repository or Path(tempfile.mkdtemp(prefix="rollout-repository-"))
    serving = ServingConfig(
        model_name=model, version=version, cpu_threads=1, instance_count=1, max_queue_size=0, queue_timeout_us=0
    )
    write_model(checkpoint, repository, serving)
    return repository


def restarted_in_place(proxy_config: dict) -> None:
    """The proxy's config edited for servers restarted at their own address: outlier ejection shortened to 1 s.

    In Kubernetes a rollout's new pod gets a new address; here a server comes back at its old one. The proxy's
    30 s ejection of a stopping server (5 refusals in a row before its health check fails), which passing health
    checks do not lift (a pod with a dead stub passes them too), would then still hold the first server out,
    back and healthy, when the second one stops.
    """
    (cluster,) = proxy_config["static_resources"]["clusters"]
    cluster["outlier_detection"]["base_ejection_time"] = "1s"


def run_restart(args: argparse.Namespace) -> dict:
    """Part 2: each of ``--servers`` restarted in turn under load (behind the shipped proxy with ``--proxy``)."""
    from .corpus import english_texts
    from .proxy import proxy_stats, start_proxy

    repository = tiny_repository(args.checkpoint, args.model)
    options = [options_on_free_ports(repository, exit_timeout_s=args.exit_timeout_s) for _ in range(args.servers)]
    servers = [LocalServer(option) for option in options]
    proxy, stats = None, {}
    try:
        with concurrent.futures.ThreadPoolExecutor(len(servers)) as pool:
            list(pool.map(lambda server: server.start(timeout_s=240), servers))
        if args.proxy:
            folder = Path(tempfile.mkdtemp(prefix="rollout-proxy-"))
            upstreams = [server.grpc_url for server in servers]
            proxy, target = start_proxy(upstreams, folder, edit=restarted_in_place, concurrency=1)
            balancing = {}
        else:
            target = "ipv4:" + ",".join(server.grpc_url for server in servers)
            balancing = {"load_balancing": "round_robin"}
        texts = english_texts(args.texts, seed=1)
        load = Load(args.callers, args.pause_s, args.before_s, args.settle_s, args.after_s)
        with Classifier(target, args.checkpoint, model=args.model, **balancing) as classifier:
            figures, switches, errors = restart_under_load(classifier, servers, texts, load)
        if proxy is not None:
            stats = proxy_stats(folder)
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.wait(timeout=30)
        for server in servers:
            server.stop()
    text = report(figures, switches, errors)
    if stats:
        text += "\nproxy: " + ", ".join(f"{name} {value}" for name, value in stats.items())
    print(text, flush=True)
    return {"phases": [asdict(p) for p in figures], "switches": [asdict(s) for s in switches], "proxy": stats}


def run_version(args: argparse.Namespace) -> dict:
    """Part 1: ``--new-checkpoint`` loaded as version 2 of a running server under load, then ``--bad-checkpoint``
    (if given) as version 3, which must be refused while version 2 serves on."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    from .corpus import english_texts
    from .server_flags import GRPC_ADMIN_KEY_HEADER, generate_admin_key

    repository = tiny_repository(args.checkpoint, args.model)
    server = LocalServer(options_on_free_ports(repository, exit_timeout_s=10, admin_key=generate_admin_key()))
    admin_headers = {GRPC_ADMIN_KEY_HEADER: server.options.admin_key}
    texts = english_texts(args.texts, seed=1)
    loads: list[str] = []
    try:
        server.start(timeout_s=240)
        with (
            Classifier(server.grpc_url, args.checkpoint, model=args.model) as classifier,
            grpcclient.InferenceServerClient(server.grpc_url) as admin,
        ):
            expected = {"1": answers(classifier, texts)}
            with Callers(classifier, texts, args.callers, args.pause_s) as callers:
                begin = time.monotonic()
                time.sleep(args.before_s)
                rollout = time.monotonic()
                tiny_repository(args.new_checkpoint, args.model, version=2, repository=repository)
                admin.load_model(args.model, headers=admin_headers)
                loads.append(f"version 2 loaded in {time.monotonic() - rollout:.2f} s")
                if args.bad_checkpoint:
                    tiny_repository(args.bad_checkpoint, args.model, version=3, repository=repository)
                    began = time.monotonic()
                    try:
                        admin.load_model(args.model, headers=admin_headers)
                        loads.append("version 3 LOADED: it should have been refused")
                    except InferenceServerException as error:
                        first_line = error.message().splitlines()[0]
                        loads.append(f"version 3 refused in {time.monotonic() - began:.2f} s: {first_line}")
                after = time.monotonic()
                time.sleep(args.after_s)
            end = time.monotonic()
            with Classifier(server.grpc_url, args.checkpoint, model=args.model, model_version="2") as pinned:
                expected["2"] = answers(pinned, texts)
    finally:
        server.stop()
    first = callers.first_answer_from("2")
    if first is not None:
        loads.append(f"first answer from version 2: {first - rollout:.2f} s after the load began")
    figures = phases(callers.calls, (begin, rollout, after, end), expected)
    print(report(figures, [], callers.errors) + "\n" + "\n".join(loads), flush=True)
    return {"phases": [asdict(p) for p in figures], "loads": loads}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    restart_parser = commands.add_parser("restart", help="restart each of several servers in turn under load")
    restart_parser.add_argument("--servers", type=int, default=2)
    restart_parser.add_argument("--settle-s", type=float, default=2.0, help="pause after each server is back")
    restart_parser.add_argument("--exit-timeout-s", type=int, default=30)
    restart_parser.add_argument(
        "--proxy", action="store_true", help="call through the shipped Envoy proxy (one connection), not round_robin"
    )
    version_parser = commands.add_parser("version", help="load a new version into a running server under load")
    version_parser.add_argument("--new-checkpoint", type=Path, required=True, help="loaded as version 2")
    version_parser.add_argument("--bad-checkpoint", type=Path, help="then loaded as version 3: must be refused")
    for command in (restart_parser, version_parser):
        command.add_argument("--checkpoint", type=Path, default=Path("checkpoints/tiny-single"))
        command.add_argument("--model", default="distilbert_classifier")
        command.add_argument("--callers", type=int, default=4)
        command.add_argument("--pause-s", type=float, default=0.0, help="each caller's pause between calls")
        command.add_argument("--texts", type=int, default=50)
        command.add_argument("--before-s", type=float, default=10.0)
        command.add_argument("--after-s", type=float, default=5.0)
        command.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args(argv)
    figures = run_restart(args) if args.command == "restart" else run_version(args)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 1 if any(p["failed"] or p["wrong"] for p in figures["phases"]) else 0


if __name__ == "__main__":
    sys.exit(main())
