"""One prepared device check on a GPU machine: the CUDA tests, the in-process ceiling and the served stack.

    python3 benchmarks/gpu_check.py --bundle .tools/gpu/bundle.tar.xz --out "$OUT"    # make gpu-bundle first

As a device call (docs/BENCHMARKS.md, "GPU"): that command, carry ``[".tools/gpu"]``, timeout_s 540. What
the GPU machine lacks comes in the bundle (gpu_bundle.py), this project's packages (``serving/``,
``client/``) with the working tree; every step runs with both on PYTHONPATH. The steps, each with its own
time limit inside one overall budget (``--budget-s``):

    unpack       the bundle into a temporary folder; TRITONSERVER_HOME (distilbert_serving.launch),
                 PERF_ANALYZER_HOME (perf_analyzer.py) and PYTHONPATH point at it
    environment  GPU, driver, torch and CUDA; each bundled binary's libraries resolve (ldd); tritonclient,
                 distilbert_serving and the rest import
    checkpoint   full-size DistilBERT, random weights from build/checkpoints.py's seed, the bundled vocabulary
    ---- without CUDA the check stops here: "CUDA not available: <what remains>", exit code 2 ----
    pytest       pytest tests/gpu: in-process CUDA tests, and a KIND_GPU server checked against CPU transformers
    ceiling      gpu_ceiling.py measure: transformers padded vs packed, bf16/fp16/fp32, real texts and
                 fixed 128-token batches; the GPU's dense bf16 rate; fp32 GPU vs CPU logits
    served       tritonserver with GPU instances (bf16) driven by perf_analyzer over gRPC with single-text
                 requests and 32-text requests, with one, two and four instances

Written to ``--out``: summary.md (each figure beside its target, also printed last), summary.json,
check.log (everything printed), raw.tar.gz (each step's log and JSON, the server log). Real weights need
a second call: ``gpu_ceiling.py agreement``. Exit codes: 0 every step ran (the summary says which targets
were met); 1 a step failed; 2 no CUDA. ``--cpu-smoke``: after the CUDA stop, serve a tiny model on a CPU
instance from the bundle and drive it with perf_analyzer, to prove the bundle is complete.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gpu_bundle import BUNDLE, FALLBACK, PROJECT, ROOT_NAME

SKIPPED = "--skip"  # the detail of a step not run because it was asked not to: not a failure

# (cap, floor) seconds per step: a step gets at most its cap and never eats into the floors of the
# steps after it; a step whose floor no longer fits is not run.
BUDGETS = {"checkpoint": (150, 30), "pytest": (150, 60), "ceiling": (180, 60), "served": (260, 100)}
AFTER_CUDA = {
    "pytest": "pytest tests/gpu (in-process CUDA tests; KIND_GPU server vs CPU transformers)",
    "ceiling": "the in-process GPU ceiling (gpu_ceiling.py)",
    "served": "the served stack (tritonserver with a GPU instance, perf_analyzer)",
}

# The served GPU models take larger batches than the CPU defaults: at 256 callers, or 16 requests of
# 32 texts, a dynamic batch holds up to 512 texts, and a GPU runs a 64k-token forward with ease.
SERVED_BATCH = 512
SERVED_FORWARD_TOKENS = 65536
TEXTS_PER_REQUEST = 32
# (model, texts per request, concurrency): low loads on one instance, then each model at its top loads.
# A name ending in _x<N> has N instances on the one GPU (while one instance's execute works in Python,
# another's forward runs); _padded, _varlen: that forward_mode.
TOP_LOADS = ((1, 256), (TEXTS_PER_REQUEST, 16))
GPU_MODELS = ("gpu_bf16", "gpu_bf16_x2", "gpu_bf16_x4", "gpu_bf16_varlen_x4", "gpu_bf16_padded_x4")
GPU_RUNS = (("gpu_bf16", 1, 1), ("gpu_bf16", 1, 64), ("gpu_bf16", TEXTS_PER_REQUEST, 4))
GPU_RUNS += tuple((model, texts, concurrency) for model in GPU_MODELS for texts, concurrency in TOP_LOADS)
CPU_SMOKE_RUNS = (("cpu_smoke", 1, 1), ("cpu_smoke", TEXTS_PER_REQUEST, 2))
# The served step by instance kind: the models' precision, the runs, perf_analyzer's measurement window (ms).
SERVED = {"gpu": ("bf16", GPU_RUNS, 2000), "cpu": ("fp32", CPU_SMOKE_RUNS, 1000)}
RUN_SECONDS = 15  # one perf_analyzer run: three 2 s windows, start and warm-up
FLOP_PER_TOKEN = 85e6  # DistilBERT's linear layers: 6 × (4·768² + 2·768·3072) multiply-adds × 2
TARGETS = {
    "fixed128_dense_fraction": 0.4,
    "packed_vs_transformers_texts": 1.5,
    "served_batch_vs_ceiling": 0.8,
    "served_single_seq_s": 10_000,
}


@dataclass
class StepResult:
    name: str
    status: str  # ok | failed | timed out | not run
    seconds: float = 0.0
    detail: str = ""


@dataclass
class Check:
    out: Path
    raw: Path
    log: object
    deadline: float
    steps: list[StepResult] = field(default_factory=list)
    skip: set[str] = field(default_factory=set)  # steps not to run (--skip)

    def say(self, text: str = "") -> None:
        print(text, flush=True)
        self.log.write(text + "\n")
        self.log.flush()

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def timeout_for(self, name: str) -> float:
        names = list(BUDGETS)
        later = sum(BUDGETS[n][1] for n in names[names.index(name) + 1 :] if n not in self.skip)
        return min(BUDGETS[name][0], self.remaining() - later)

    def run(self, name: str, command: list[str], env: dict, timeout: float) -> StepResult:
        """One step as a child process group; its output to raw/<name>.log and echoed here; stopped at ``timeout``."""
        if timeout < BUDGETS.get(name, (0, 1))[1]:
            return self.record(StepResult(name, "not run", 0, f"out of time ({timeout:.0f}s left for it)"))
        self.say(f"\n== {name} (at most {timeout:.0f}s): {' '.join(command)}")
        started = time.monotonic()
        log_path = self.raw / f"{name}.log"
        with open(log_path, "w") as step_log:
            # To a file, not a pipe: a grandchild that outlives the step cannot hold the step open.
            process = subprocess.Popen(
                command, cwd=PROJECT, env=env, stdout=step_log, stderr=subprocess.STDOUT, start_new_session=True
            )
        timed_out, pending = False, ""
        with open(log_path, errors="replace") as output:
            while True:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=1)
                *lines, pending = (pending + output.read()).split("\n")
                for line in lines:
                    self.say(f"  {line}")
                if process.returncode is not None:
                    break
                if not timed_out and time.monotonic() - started > timeout:
                    timed_out = True
                    stop_group(process)
        if pending:
            self.say(f"  {pending}")
        stop_leftover_servers(Path(env["TMPDIR"]))
        if timed_out:
            status, detail = "timed out", f"stopped after {timeout:.0f}s"
        else:
            status, detail = ("ok", "") if process.returncode == 0 else ("failed", f"exit code {process.returncode}")
        return self.record(StepResult(name, status, time.monotonic() - started, detail))

    def record(self, result: StepResult) -> StepResult:
        self.steps.append(result)
        detail = f" — {result.detail}" if result.detail else ""
        self.say(f"-- {result.name}: {result.status} ({result.seconds:.0f}s){detail}")
        return result


def stop_group(process: subprocess.Popen, grace_s: float = 15) -> None:
    """SIGTERM to a child's process group, SIGKILL after ``grace_s``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace_s)
            return


def stop_leftover_servers(workdir: Path) -> None:
    """Stop any tritonserver a step started and left running: each of ours runs from under ``workdir``.

    A step stopped at its time limit cannot stop the server it started (in a session of its own, so not
    in the step's process group), and one left holding the GPU would skew the steps after it. Found by
    command line in /proc; its process group (the server and its stubs) is stopped by id.
    """
    ours = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                command = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
                if command.startswith(f"{workdir}/") and command.endswith("/tritonserver"):
                    ours.append(int(entry.name))
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in ours:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, sig)
        if ours and sig == signal.SIGTERM:
            time.sleep(5)


# ---------------------------------------------------------------- preparation (no CUDA needed)


def unpack(bundle: Path, workdir: Path) -> Path:
    with tarfile.open(bundle, "r:xz") as tar:
        tar.extractall(workdir, filter="data")
    root = workdir / ROOT_NAME
    if not (root / "MANIFEST.json").exists():
        raise SystemExit(f"{bundle}: no {ROOT_NAME}/MANIFEST.json inside; rebuild it with `make gpu-bundle`")
    return root


def child_environment(root: Path, workdir: Path) -> dict[str, str]:
    """The steps' environment: the bundle's and the working tree's packages on PYTHONPATH, its binaries' homes."""
    env = dict(os.environ)
    # numpy 1.x where the bundle has it for this Python (gpu_bundle.py, stage_numpy), before the
    # interpreter's own site-packages: the backend stub misreads tensors under numpy 2.
    numpy_1 = root / f"numpy-cp{sys.version_info.major}{sys.version_info.minor}"
    paths = [str(numpy_1)] if numpy_1.exists() else []
    # The installed distribution's package roots (pyproject.toml): importable from the working tree by PYTHONPATH.
    paths += [str(PROJECT / "serving"), str(PROJECT / "client"), str(root / "site")]
    if any(importlib.util.find_spec(name) is None for name in FALLBACK):
        paths.append(str(root / "fallback"))
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["TRITONSERVER_HOME"] = str(root)  # distilbert_serving.launch
    env["PERF_ANALYZER_HOME"] = str(root / "perf_analyzer")  # perf_analyzer.py
    env.update(PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", TQDM_DISABLE="1")
    # The interpreter's own bin first: the backend stub finds its packages through the first python3 on PATH.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["TMPDIR"] = str(workdir)
    return env


def missing_libraries(binary: Path, library_path: list[str]) -> list[str]:
    env = {"LD_LIBRARY_PATH": os.pathsep.join(library_path), "PATH": "/usr/bin:/bin"}
    listing = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, env=env).stdout
    return [line.split("=>")[0].strip() for line in listing.splitlines() if "not found" in line]


# Imported in the steps' environment: what the machine has, as one JSON line.
_PROBE = r"""
import json, platform, sys
facts = {"python": platform.python_version(), "executable": sys.executable}
try:
    import torch
    facts.update(torch=torch.__version__, torch_cuda=torch.version.cuda, cuda=torch.cuda.is_available())
    if facts["cuda"]:
        p = torch.cuda.get_device_properties(0)
        facts.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1), capability=f"{p.major}.{p.minor}")
except Exception as e:
    facts.update(cuda=False, torch_error=repr(e))
for name in sys.argv[1:]:
    try:
        module = __import__(name, fromlist=["_"])
        facts[name] = getattr(module, "__version__", getattr(module, "__file__", "ok"))
    except Exception as e:
        facts[name] = f"missing: {e!r}"[:1500]
print(json.dumps(facts))
"""
# What the steps import; transformers' lazy imports fail only at the model class, distilbert_serving's at its
# server-side modules.
MODULES = (
    "transformers", "transformers.models.distilbert.modeling_distilbert", "tokenizers", "safetensors", "numpy",
    "grpc", "google.protobuf", "tritonclient.grpc", "rapidjson", "pytest",
    "distilbert_serving.token_model.engine", "distilbert_serving.launch", "distilbert_client",
)  # fmt: skip


def environment(root: Path, env: dict) -> dict:
    """What this machine has, and whether each bundled binary's libraries resolve (ldd); JSON-ready."""
    import sysconfig

    probe = subprocess.run(
        [sys.executable, "-c", _PROBE, *MODULES], capture_output=True, text=True, env=env, cwd=PROJECT, timeout=120
    )
    said = probe.stdout.strip().splitlines()
    facts = json.loads(said[-1]) if probe.returncode == 0 else {"probe_error": probe.stderr[-2000:]}
    facts["manifest"] = {k: v for k, v in json.loads((root / "MANIFEST.json").read_text()).items() if k != "files"}
    if shutil.which("nvidia-smi"):
        smi = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=30)
        facts["nvidia_smi"] = smi.stdout[-3000:] or smi.stderr[-1000:]
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    triton, libs = root / "pytriton" / "tritonserver", str(root / "nvidia_pytriton.libs")
    binaries = {  # name → (file, its LD_LIBRARY_PATH as distilbert_serving.launch and perf_analyzer.py set it)
        "tritonserver": (triton / "bin" / "tritonserver", [libs]),
        "libtriton_python.so": (triton / "backends" / "python" / "libtriton_python.so", [libs]),
        f"stub {version}": (
            triton / "python_backend_stubs" / version / "triton_python_backend_stub",
            [sysconfig.get_config_var("LIBDIR") or "", libs],
        ),
        "perf_analyzer": (root / "perf_analyzer" / "bin" / "perf_analyzer", [str(root / "perf_analyzer" / "lib")]),
    }
    facts["libraries"], problems = {}, []
    for name, (binary, path) in binaries.items():
        if not binary.exists():
            facts["libraries"][name] = "absent"
            problems.append(f"the bundle has no {name} (built for Pythons {facts['manifest'].get('pythons')})")
            continue
        missing = missing_libraries(binary, path)
        facts["libraries"][name] = missing or "all found"
        if missing:
            problems.append(f"{name} needs {', '.join(missing)}, not found on this machine")
    if re.match(r"[2-9]\.", str(facts.get("numpy", ""))):
        problems.append(f"numpy {facts['numpy']}: the served models refuse numpy 2 (token_model/device.py)")
    problems += [
        f"{m} does not import: {facts.get(m)}" for m in MODULES if str(facts.get(m, "missing")).startswith("missing")
    ]
    facts["problems"] = problems
    # Any of these stops the served runs (a stub without its libpython, say); the in-process steps still run.
    facts["server_possible"] = not problems
    return facts


# ---------------------------------------------------------------- the served step (a child process)


def served(params: dict) -> int:
    """Export the served models, start tritonserver, run perf_analyzer; results to raw/served.json as they come."""
    from distilbert_serving.export import ServingConfig, write_model
    from distilbert_serving.launch import LocalServer, ServerStartError, options_on_free_ports
    from perf_analyzer import model_counters, run_perf_analyzer
    from perf_input import write_token_input_data

    deadline = time.monotonic() + params["budget_s"]
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # KeyboardInterrupt: the server stops on the way out
    kind, (precision, runs, interval_ms) = params["kind"], SERVED[params["kind"]]
    raw, repository = Path(params["workdir"]) / "raw", Path(params["workdir"]) / "repository"
    ids = json.loads(Path(params["texts"]).read_text())["ids"]
    models: dict[str, int] = {}  # name → instances
    for model in dict.fromkeys(model for model, _, _ in runs):
        models[model] = int(model.rsplit("_x", 1)[1]) if "_x" in model else 1
        # An unbounded queue: a closed loop bounds it anyway, and a bound below the callers would refuse.
        config = ServingConfig(
            model_name=model, instance_kind=kind, instance_count=models[model], precision=precision,
            forward_mode=next((m for m in ("padded", "varlen") if f"_{m}" in model), "packed"), max_batch_size=SERVED_BATCH,
            max_forward_tokens=SERVED_FORWARD_TOKENS, max_queue_size=0, queue_timeout_us=0,
        )  # fmt: skip
        write_model(Path(params["checkpoint"]), repository, config)
    # -b 1: each text at its own length. -b 32: perf_analyzer needs one shape across its data, so every
    # text is padded to the longest with a mask, which the model drops before its forward (perf_input.py).
    inputs = {
        1: write_token_input_data(ids, raw / "perf_input.json"),
        TEXTS_PER_REQUEST: write_token_input_data(ids, raw / "perf_input_padded.json", padded=True),
    }
    result: dict = {"kind": kind, "precision": precision, "models": models, "runs": [], "skipped": []}

    def save():
        (raw / "served.json").write_text(json.dumps(result, indent=1))

    server = LocalServer(options_on_free_ports(repository, exit_timeout_s=10), log_path=raw / "tritonserver.log")
    try:
        started = time.monotonic()
        server.start(timeout_s=max(30.0, min(300.0, deadline - time.monotonic() - RUN_SECONDS)))
        result["startup_s"] = time.monotonic() - started
        log = server.log_path.read_text(errors="replace")
        # Each instance's initialize logs "<model>: ..., <precision> on <device>, ...".
        result["instances_on"] = {m: re.findall(rf"{re.escape(m)}: [^\n]*? on (cuda:\d+|cpu)\b", log) for m in models}
        print(f"server ready in {result['startup_s']:.0f}s; instances on {result['instances_on']}", flush=True)
        save()
        for model, per_request, concurrency in runs:
            run = dict(model=model, instances=models[model], texts_per_request=per_request, concurrency=concurrency)
            label = f"{model} {per_request} text(s)/request c={concurrency}"
            if deadline - time.monotonic() < RUN_SECONDS:
                result["skipped"].append(f"{label}: out of time")
                continue
            before = model_counters(server.metrics_url, model)
            began = time.monotonic()
            try:
                perf = run_perf_analyzer(
                    model, server.grpc_url, inputs[per_request], concurrency=concurrency,
                    measurement_interval_ms=interval_ms, stability_percentage=1000,
                    extra_args=("-b", str(per_request)),
                )  # fmt: skip
            except RuntimeError as error:
                run["error"] = str(error)[-1500:]
                print(f"{label}: perf_analyzer failed: {str(error)[-600:]}", flush=True)
            else:
                wall = time.monotonic() - began
                delta = model_counters(server.metrics_url, model, since=before)
                run.update(
                    seq_s=perf.throughput, p50_ms=perf.p50_ms, p99_ms=perf.p99_ms,
                    texts_per_forward=delta["sequences"] / delta["forwards"] if delta["forwards"] else None,
                    # The share of the run's wall time the instances spent in forward passes (summed).
                    forward_busy=delta["forward_us"] / 1e6 / wall / models[model],
                )  # fmt: skip
                print(f"{label}: {json.dumps(run)}", flush=True)
            result["runs"].append(run)
            save()
        result["stubs_healthy"] = server.stubs_healthy()
    except ServerStartError as error:
        result["error"] = str(error)[-4000:]
        print(f"tritonserver did not start: {result['error']}", flush=True)
    except KeyboardInterrupt:
        result["skipped"].append("stopped at the step's time limit")
    finally:
        server.stop(timeout_s=20)
        save()
    return 0 if result["runs"] and not any("error" in r for r in result["runs"]) else 1


# ---------------------------------------------------------------- summary


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def pytest_outcome(raw: Path) -> str:
    log = raw / "pytest.log"
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    summary = [line for line in lines if re.search(r"\b(passed|failed|skipped|error|no tests ran)\b", line)]
    return summary[-1].strip("= ") if summary else ""


def figures(raw: Path) -> list[dict]:
    """Each figure beside its target: rows of (figure, value, target, met: True/False/None)."""
    t, rows = TARGETS, []

    def row(figure: str, value: str, target: str = "", met: bool | None = None) -> None:
        rows.append({"figure": figure, "value": value, "target": target, "met": met})

    if outcome := pytest_outcome(raw):
        row("pytest tests/gpu", outcome, "all pass", not re.search(r"failed|error", outcome))
    ceiling = _read_json(raw / "ceiling.json")
    if rate := ceiling.get("dense_bf16_tflops"):
        row("dense bf16 matrix product, 8192³", f"{rate:.0f} TFLOP/s", "yardstick")
    for precision, entry in ceiling.get("precisions", {}).items():
        texts, fixed, half = entry["texts"], entry["fixed128"], precision in ("bf16", "fp16")
        ratio, goal = texts["packed_best"] / texts["transformers_best"], t["packed_vs_transformers_texts"]
        row(
            f"{precision} real texts (in-process): packed vs transformers padded",
            f"{texts['packed_best']:,.0f} vs {texts['transformers_best']:,.0f} seq/s = {ratio:.2f} ×",
            f"≥ {goal} ×" if half else "",
            ratio >= goal if half else None,
        )
        share = fixed["packed_best"] * FLOP_PER_TOKEN * 128 / 1e12 / rate if rate else 0.0
        judged = precision == "bf16" and bool(rate)
        row(
            f"{precision} 128-token batches (in-process): packed / transformers; single text",
            f"{fixed['packed_best']:,.0f} ({100 * share:.0f} % of dense bf16) / {fixed['transformers_best']:,.0f} "
            f"seq/s; {entry['single_text_ms']:.2f} ms",
            f"packed ≥ {t['fixed128_dense_fraction']:.0%} of dense" if judged else "",
            share >= t["fixed128_dense_fraction"] if judged else None,
        )
        if cudnn := entry.get("sdpa_cudnn"):
            row(
                f"{precision} single text with cuDNN attention (new lengths, then again) / without (as served)",
                f"{cudnn['cudnn_first_pass']:.2f}, {cudnn['cudnn_second_pass']:.2f} / {cudnn['without_cudnn']:.2f} ms",
            )
    served = _read_json(raw / "served.json")
    runs = [r for r in served.get("runs", []) if "seq_s" in r]
    bf16 = ceiling.get("precisions", {}).get("bf16", {}).get("texts")
    ceiling_bf16 = max(bf16["packed_best"], bf16["transformers_best"]) if bf16 else None
    for batched in (False, True):
        if not (some := [r for r in runs if (r["texts_per_request"] > 1) == batched]):
            continue
        best = max(some, key=lambda r: r["seq_s"])
        label = f"served {served['precision']} ({served['kind']}), {best['texts_per_request']}-text requests"
        value = f"{best['seq_s']:,.0f} seq/s (best: {best['model']}, c={best['concurrency']})"
        if not batched:
            row(label, value, f"≥ {t['served_single_seq_s']:,} seq/s", best["seq_s"] >= t["served_single_seq_s"])
        elif ceiling_bf16:
            ratio, goal = best["seq_s"] / ceiling_bf16, t["served_batch_vs_ceiling"]
            row(label, f"{value} = {ratio:.2f} × in-process ceiling", f"≥ {goal} × ceiling", ratio >= goal)
    for r in runs:
        row(
            f"  {r['model']} {r['texts_per_request']} text(s)/request, c={r['concurrency']}",
            f"{r['seq_s']:,.0f} seq/s, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
            f"{r['texts_per_forward'] or 0:.0f} texts/forward, forward busy {100 * r['forward_busy']:.0f} %",
        )
    for model, devices in served.get("instances_on", {}).items():
        on_gpu = bool(devices) and all(d.startswith("cuda") for d in devices)
        row(f"{model}: instances placed on", ", ".join(devices) or "(not in the server log)", "cuda", on_gpu)
    for way, c in ceiling.get("fp32_gpu_vs_cpu_transformers", {}).items():
        diff = c["max_abs_diff"]
        row(f"fp32 GPU ({way}, TF32 off) vs CPU transformers: max abs Δlogit", f"{diff:.2e}", "≤ 1e-4", diff <= 1e-4)
    return rows


def write_summary(check: Check, facts: dict, final_line: str) -> None:
    rows = figures(check.raw)
    lines = [
        "# GPU check",
        "",
        f"Machine: {facts.get('gpu') or 'no CUDA device'}; Python {facts.get('python')}, torch {facts.get('torch')} "
        f"(CUDA {facts.get('torch_cuda')}), transformers {facts.get('transformers')}. "
        f"Bundle built {facts.get('manifest', {}).get('built')}.",
        "",
        "| step | status | seconds | detail |",
        "| --- | --- | --- | --- |",
        *(f"| {s.name} | {s.status} | {s.seconds:.0f} | {s.detail} |" for s in check.steps),
        "",
    ]
    if facts.get("problems"):
        lines += ["Environment problems:", *(f"- {p}" for p in facts["problems"]), ""]
    if rows:
        mark = {True: "✓", False: "✗", None: ""}
        lines += ["| figure | value | target | met |", "| --- | --- | --- | --- |"]
        lines += [f"| {r['figure']} | {r['value']} | {r['target']} | {mark[r['met']]} |" for r in rows]
        lines.append("")
    text = "\n".join([*lines, final_line]) + "\n"
    (check.out / "summary.md").write_text(text)
    summary = {"steps": [asdict(s) for s in check.steps], "figures": rows, "environment": facts, "result": final_line}
    (check.out / "summary.json").write_text(json.dumps(summary, indent=1))
    check.say("\n" + text)


# ---------------------------------------------------------------- main


def run_check(args) -> int:
    out = args.out or Path(os.environ.get("OUT") or PROJECT / "bench-results" / time.strftime("gpu-%Y%m%d-%H%M%S"))
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    raw = workdir / "raw"
    raw.mkdir()
    log = open(out / "check.log", "w")  # noqa: SIM115 - closed in finally
    check = Check(out=out, raw=raw, log=log, deadline=time.monotonic() + args.budget_s, skip=set(args.skip or ()))
    try:
        return _run_steps(check, args, workdir)
    finally:
        with contextlib.suppress(OSError), tarfile.open(out / "raw.tar.gz", "w:gz") as tar:
            tar.add(raw, arcname="raw")
        log.close()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def _run_steps(check: Check, args, workdir: Path) -> int:
    facts: dict = {}
    if not args.bundle.exists():
        check.record(StepResult("unpack", "failed", 0, f"{args.bundle} missing: build it with `make gpu-bundle`"))
        write_summary(check, facts, f"GPU check FAILED: no bundle at {args.bundle}")
        return 1
    started = time.monotonic()
    root = unpack(args.bundle, workdir)
    size = f"{args.bundle.stat().st_size / 2**20:.1f} MiB into {root}"
    check.record(StepResult("unpack", "ok", time.monotonic() - started, size))
    env = child_environment(root, workdir)

    started = time.monotonic()
    facts.update(environment(root, env))
    (check.raw / "environment.json").write_text(json.dumps(facts, indent=1))
    cuda = f"yes: {facts.get('gpu')}" if facts.get("cuda") else "no"
    summary = f"Python {facts.get('python')}, torch {facts.get('torch')}, CUDA {cuda}; tritonclient {facts.get('tritonclient.grpc')}"
    status = "failed" if facts["problems"] else "ok"
    check.record(StepResult("environment", status, time.monotonic() - started, summary))
    for problem in facts["problems"]:
        check.say(f"   problem: {problem}")

    checkpoints = workdir / "checkpoints"
    for size in ["full"] + (["tiny"] if args.cpu_smoke and not facts.get("cuda") else []):
        name = "checkpoint" if size == "full" else "checkpoint-tiny"
        build = ["build/checkpoints.py", "--size", size, "--problem-type", "single_label_classification", "--out"]
        step = check.run(name, [sys.executable, *build, str(checkpoints)], env, check.timeout_for("checkpoint"))
        if step.status != "ok":
            write_summary(check, facts, "GPU check FAILED: no checkpoint")
            return 1
    checkpoint = checkpoints / "full-single"
    env["GPU_CHECK_CHECKPOINT"] = str(checkpoint)  # tests/gpu/test_served_gpu.py serves this checkpoint
    texts = root / "data" / "texts.json"

    if not facts.get("cuda"):
        if args.cpu_smoke and facts["server_possible"]:
            _served_step(check, env, workdir, checkpoints / "tiny-single", texts, "cpu")
        for name in AFTER_CUDA:
            check.record(StepResult(name, "not run", 0, "CUDA not available"))
        write_summary(check, facts, f"CUDA not available: not run: {'; '.join(AFTER_CUDA.values())}")
        return 2

    for name in sorted(check.skip):
        check.record(StepResult(name, "not run", 0, SKIPPED))
    if "pytest" not in check.skip:
        pytest = [sys.executable, "-m", "pytest", "tests/gpu", "-q", "-p", "no:cacheprovider", "-rs"]
        check.run("pytest", pytest, env, check.timeout_for("pytest"))
    if "ceiling" not in check.skip:
        timeout = check.timeout_for("ceiling")
        ceiling = ["benchmarks/gpu_ceiling.py", "measure", "--checkpoint", str(checkpoint), "--texts", str(texts)]
        ceiling += ["--out", str(check.raw / "ceiling.json"), "--budget-s", str(max(10, timeout - 45))]
        check.run("ceiling", [sys.executable, *ceiling], env, timeout)
    if "served" not in check.skip:
        if facts["server_possible"]:
            _served_step(check, env, workdir, checkpoint, texts, "gpu")
        else:
            check.record(StepResult("served", "not run", 0, "; ".join(facts["problems"])))
    failed = [s.name for s in check.steps if s.status != "ok" and s.detail != SKIPPED]
    final = f"GPU check: steps not ok: {', '.join(failed)}" if failed else "GPU check: every step ran"
    write_summary(check, facts, f"{final} in {args.budget_s - check.remaining():.0f}s")
    return 1 if failed else 0


def _served_step(check: Check, env: dict, workdir: Path, checkpoint: Path, texts: Path, kind: str) -> StepResult:
    timeout = check.timeout_for("served")
    params = {"workdir": str(workdir), "checkpoint": str(checkpoint), "texts": str(texts), "kind": kind}
    params["budget_s"] = timeout - 25  # room to stop the server
    command = [sys.executable, str(Path(__file__).resolve()), "--served-step", json.dumps(params)]
    return check.run("served" if kind == "gpu" else "served-cpu-smoke", command, env, timeout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=BUNDLE, help="gpu_bundle.py's output")
    parser.add_argument(
        "--out", type=Path, help="results folder (default: $OUT where set, else bench-results/gpu-<time>)"
    )
    parser.add_argument("--budget-s", type=float, default=450, help="all steps together (a device call allows 600)")
    parser.add_argument(
        "--cpu-smoke", action="store_true", help="without CUDA: serve a tiny model on the CPU from the bundle"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (unpacked bundle, checkpoints)")
    parser.add_argument("--skip", action="append", choices=list(AFTER_CUDA), help="a step not to run (a rerun's time)")
    parser.add_argument("--served-step", type=json.loads, help=argparse.SUPPRESS)  # the served step's child: params
    args = parser.parse_args(argv)
    return served(args.served_step) if args.served_step else run_check(args)


if __name__ == "__main__":
    sys.exit(main())
