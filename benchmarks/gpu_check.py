"""One prepared device check on a GPU machine: the CUDA tests, the in-process ceiling and the served stack.

On a machine with one H100/H200, from the repository root, in at most ~8 minutes:

    python3 benchmarks/gpu_check.py --bundle .tools/gpu/bundle.tar.xz --out "$OUT"

As a device `run` call (docs/BENCHMARKS.md, "GPU"): command
``PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py --bundle .tools/gpu/bundle.tar.xz --out "$OUT"``,
carry ``[".tools/gpu"]``, timeout_s 540. Build the bundle here first: ``make gpu-bundle``.

That machine has Python 3.12 with CUDA torch, transformers, tokenizers, grpcio and numpy, but no
tritonclient, no nvidia-pytriton and no network: the bundle (benchmarks/gpu_bundle.py) carries the
server, its Python backend and stub, perf_analyzer, tritonclient, the vocabulary and the benchmark's texts.
The steps, each with its own time limit inside one overall budget (``--budget-s``):

    unpack       the bundle into a temporary folder; TRITONSERVER_HOME (build/launch.py), PERF_ANALYZER_HOME
                 (benchmarks/perf_analyzer.py) and PYTHONPATH point at it
    environment  GPU, driver, torch and CUDA; each bundled binary's libraries resolve (ldd) and it runs
                 (tritonserver --help, perf_analyzer --version); tritonclient imports
    checkpoint   full-size DistilBERT, random weights from build/checkpoints.py's seed, the bundled vocabulary
    ---- without CUDA the check stops here: "CUDA not available: <what remains>", exit code 2 ----
    pytest       pytest tests/gpu: in-process CUDA tests, and a KIND_GPU server checked against CPU transformers
    ceiling      benchmarks/gpu_ceiling.py measure: transformers padded vs packed, bf16/fp16/fp32, on the real
                 texts and on fixed 128-token batches; the GPU's dense bf16 rate; fp32 GPU vs CPU logits
    served       tritonserver with GPU instances (bf16, packed forward) driven by perf_analyzer over gRPC with
                 single-text requests (concurrency 1, 64, 256) and 32-text requests (concurrency 4, 16)

Written to ``--out`` (at most 8 files come back from a device call): summary.md (each figure beside its
target, also printed last), summary.json, check.log (everything printed), raw.tar.gz (each step's log and
JSON, the server log, perf_analyzer's input data). The real-weights precision figure needs a second call
(the weights do not fit beside the bundle): ``benchmarks/gpu_ceiling.py agreement`` (docs/BENCHMARKS.md).

Exit codes: 0 every step ran (the summary says which targets were met); 1 a step failed; 2 no CUDA.
``--cpu-smoke`` (for a machine without a GPU): after the CUDA stop, serve a tiny model on a CPU instance
from the unpacked bundle and drive it with perf_analyzer, to prove the bundle is complete.
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
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import project_paths  # noqa: F401  (build/, docker/ and the models' packages by name)

PROJECT = Path(__file__).resolve().parent.parent
BUNDLE = PROJECT / ".tools" / "gpu" / "bundle.tar.xz"
ROOT_NAME = "gpu-bundle"  # benchmarks/gpu_bundle.py's top folder
SERVER_HOME_ENV = "TRITONSERVER_HOME"  # build/launch.py
PERF_HOME_ENV = "PERF_ANALYZER_HOME"  # benchmarks/perf_analyzer.py
CHECKPOINT_ENV = "GPU_CHECK_CHECKPOINT"  # tests/gpu/test_served_gpu.py serves this checkpoint when set
FALLBACK_MODULES = ("pytest", "pluggy", "iniconfig", "packaging")
SKIPPED = "--skip"  # the detail of a step not run because it was asked not to: not a failure

# (cap, floor) seconds per step: a step gets at most its cap, and never eats into the floors of the
# steps after it; a step whose floor no longer fits is not run.
# The ceiling took 84 s of its 130 on an H200 (2026-11-30); the cuDNN and attention-chunk measurements
# added since need room before its last precision (fp16) is cut.
BUDGETS = {"checkpoint": (150, 30), "pytest": (150, 60), "ceiling": (180, 60), "served": (260, 100)}
AFTER_CUDA = {
    "pytest": "pytest tests/gpu (in-process CUDA tests; KIND_GPU server vs CPU transformers)",
    "ceiling": "the in-process GPU ceiling (benchmarks/gpu_ceiling.py)",
    "served": "the served stack (tritonserver with a GPU instance, perf_analyzer)",
}

# The served models: bf16, packed forward, on the GPU. Larger batches than the CPU defaults: at
# concurrency 256, or 16 requests of 32 texts, a dynamic batch holds up to 512 texts, and the GPU
# runs a 64k-token forward as easily as the CPU runs an 8k one.
SERVED_BATCH = 512
SERVED_FORWARD_TOKENS = 65536
TEXTS_PER_REQUEST = 32
# (model, texts per request, concurrency): single-text at 1, 64 and 256; 32-text requests; and the
# top loads again with two and four instances on the one GPU (a model's name ends in _x<instances>):
# while one instance's execute decodes, validates and encodes in Python, another's forward runs. And
# forward_mode padded (a name with _padded), which beat packed in-process on the H200's mixed texts.
GPU_RUNS = (
    ("gpu_bf16", 1, 1),
    ("gpu_bf16", 1, 64),
    ("gpu_bf16", 1, 256),
    ("gpu_bf16", TEXTS_PER_REQUEST, 4),
    ("gpu_bf16", TEXTS_PER_REQUEST, 16),
    ("gpu_bf16_x2", 1, 256),
    ("gpu_bf16_x2", TEXTS_PER_REQUEST, 16),
    ("gpu_bf16_x4", 1, 256),
    ("gpu_bf16_x4", TEXTS_PER_REQUEST, 16),
    ("gpu_bf16_padded_x4", 1, 256),
    ("gpu_bf16_padded_x4", TEXTS_PER_REQUEST, 16),
)
CPU_SMOKE_RUNS = (("cpu_smoke", 1, 1), ("cpu_smoke", TEXTS_PER_REQUEST, 2))
RUN_SECONDS = 15  # one perf_analyzer run: three 2 s windows, start and warm-up
TARGETS = {
    "fixed128_dense_fraction": 0.4,
    "packed_vs_transformers_texts": 1.5,
    "served_batch_vs_ceiling": 0.8,
    "served_single_seq_s": 10_000,
    "fp32_max_abs_diff": 1e-4,
    "argmax_agreement": 0.995,
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
        timed_out = False
        with open(log_path, errors="replace") as output:
            pending = ""
            while True:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=1)
                pending += output.read()
                *lines, pending = pending.split("\n")
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
        seconds = time.monotonic() - started
        if timed_out:
            return self.record(StepResult(name, "timed out", seconds, f"stopped after {timeout:.0f}s"))
        status = "ok" if process.returncode == 0 else "failed"
        return self.record(
            StepResult(name, status, seconds, "" if status == "ok" else f"exit code {process.returncode}")
        )

    def record(self, result: StepResult) -> StepResult:
        self.steps.append(result)
        self.say(
            f"-- {result.name}: {result.status} ({result.seconds:.0f}s){' — ' + result.detail if result.detail else ''}"
        )
        return result


def stop_group(process: subprocess.Popen, grace_s: float = 15) -> None:
    """SIGTERM to a child's process group, SIGKILL after ``grace_s``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue


def stop_leftover_servers(workdir: Path) -> None:
    """Stop any tritonserver a step started and left running: each of ours runs from under ``workdir``.

    A test or step stopped at its time limit cannot stop the server it started (in a session of its
    own, so not in the step's process group); one left holding the GPU would skew the steps after it.
    Found by command line in /proc; its process group (the server and its stubs) is stopped by id.
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
        if hasattr(tarfile, "data_filter"):
            tar.extractall(workdir, filter="data")
        else:  # Python < 3.11.4
            tar.extractall(workdir)  # noqa: S202 - our own bundle
    root = workdir / ROOT_NAME
    if not (root / "MANIFEST.json").exists():
        raise SystemExit(f"{bundle}: no {ROOT_NAME}/MANIFEST.json inside; rebuild it with `make gpu-bundle`")
    return root


def child_environment(root: Path, workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    # numpy 1.x where the bundle has it for this Python (gpu_bundle.py, stage_numpy), before the
    # interpreter's own site-packages: the backend stub misreads tensors under numpy 2.
    numpy_1 = root / f"numpy-cp{sys.version_info.major}{sys.version_info.minor}"
    paths = [str(numpy_1)] if numpy_1.exists() else []
    paths.append(str(root / "site"))
    if any(importlib.util.find_spec(name) is None for name in FALLBACK_MODULES):
        paths.append(str(root / "fallback"))
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env[SERVER_HOME_ENV] = str(root)
    env[PERF_HOME_ENV] = str(root / "perf_analyzer")
    env["PYTHONUNBUFFERED"] = "1"
    env["HF_HUB_OFFLINE"] = "1"
    env["TOKENIZERS_PARALLELISM"] = "false"
    env["TQDM_DISABLE"] = "1"  # no progress bars in the logs
    # The interpreter's own bin first: the backend stub finds its packages through the first python3 on PATH.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["TMPDIR"] = str(workdir)
    return env


def missing_libraries(binary: Path, library_path: list[str]) -> list[str]:
    env = {"LD_LIBRARY_PATH": os.pathsep.join(library_path), "PATH": "/usr/bin:/bin"}
    listing = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, env=env).stdout
    return [line.split("=>")[0].strip() for line in listing.splitlines() if "not found" in line]


def environment(root: Path, env: dict) -> dict:
    """What this machine has, and whether each bundled binary loads; JSON-ready."""
    import sysconfig

    probe = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, cwd=PROJECT, timeout=120
    )
    facts = (
        json.loads(probe.stdout.strip().splitlines()[-1])
        if probe.returncode == 0
        else {"probe_error": probe.stderr[-2000:]}
    )
    facts["manifest"] = {k: v for k, v in json.loads((root / "MANIFEST.json").read_text()).items() if k != "files"}
    if shutil.which("nvidia-smi"):
        smi = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=30)
        facts["nvidia_smi"] = smi.stdout[-3000:] or smi.stderr[-1000:]
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    triton = root / "pytriton" / "tritonserver"
    libs = str(root / "nvidia_pytriton.libs")
    stub = triton / "python_backend_stubs" / version / "triton_python_backend_stub"
    binaries = {
        "tritonserver": (triton / "bin" / "tritonserver", [libs]),
        "libtriton_python.so": (triton / "backends" / "python" / "libtriton_python.so", [libs]),
        # As build/launch.py starts it: this interpreter's LIBDIR first (its libpython).
        f"stub {version}": (stub, [sysconfig.get_config_var("LIBDIR") or "", libs]),
        "perf_analyzer": (root / "perf_analyzer" / "bin" / "perf_analyzer", [str(root / "perf_analyzer" / "lib")]),
    }
    facts["libraries"] = {}
    problems = []
    for name, (binary, path) in binaries.items():
        if not binary.exists():
            facts["libraries"][name] = "absent"
            problems.append(f"the bundle has no {name} (built for Pythons {facts['manifest'].get('pythons')})")
            continue
        missing = missing_libraries(binary, path)
        facts["libraries"][name] = missing or "all found"
        if missing:
            problems.append(f"{name} needs {', '.join(missing)}, not found on this machine")
    for name, command in (
        ("tritonserver --help", [str(binaries["tritonserver"][0]), "--help"]),
        ("perf_analyzer --version", [str(binaries["perf_analyzer"][0]), "--version"]),
    ):
        library_path = binaries[name.split()[0]][1]
        run_env = {**env, "LD_LIBRARY_PATH": os.pathsep.join(library_path)}
        try:
            ran = subprocess.run(command, capture_output=True, text=True, env=run_env, timeout=60)
            first = ((ran.stdout or ran.stderr).strip().splitlines() or [""])[0][:120]
            facts[name] = f"exit {ran.returncode}: {first}"
            # tritonserver --help prints its usage and exits 1: the point is that it loads and runs.
            if not first.startswith(("Usage: tritonserver", "Perf Analyzer Version")):
                problems.append(f"{name}: {facts[name]}")
        except (OSError, subprocess.TimeoutExpired, IndexError) as error:
            facts[name] = f"failed: {error}"
            problems.append(f"{name} failed: {error}")
    numpy_major = re.match(r"(\d+)\.", str(facts.get("numpy", "")))
    if numpy_major and int(numpy_major[1]) >= 2:
        problems.append(f"numpy {facts['numpy']}: the served models refuse numpy 2 (clf_serving/device.py)")
    for module in (
        "torch",
        "transformers",
        "distilbert",
        "tokenizers",
        "safetensors",
        "numpy",
        "grpc",
        "tritonclient.grpc",
    ):
        if str(facts.get(module, "missing")).startswith("missing"):
            problems.append(f"{module} does not import: {facts.get(module)}")
    facts["problems"] = problems
    # Any of these stops the served runs (a stub without its libpython, say); the in-process steps still run.
    facts["server_possible"] = not problems
    return facts


# Run in the machine's python3 with the bundle on PYTHONPATH: what it has, as one JSON line.
_PROBE = r"""
import json, platform, sys
facts = {"python": platform.python_version(), "executable": sys.executable}
try:
    import torch
    facts.update(torch=torch.__version__, torch_cuda=torch.version.cuda, cuda=torch.cuda.is_available())
    if facts["cuda"]:
        p = torch.cuda.get_device_properties(0)
        facts.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1),
                     capability=f"{p.major}.{p.minor}", multiprocessors=p.multi_processor_count)
except Exception as e:
    facts.update(cuda=False, torch_error=repr(e))
for name in ("transformers", "tokenizers", "numpy", "grpc", "google.protobuf", "tritonclient.grpc", "rapidjson", "pytest", "safetensors"):
    try:
        module = __import__(name, fromlist=["_"])
        facts[name] = getattr(module, "__version__", "ok")
    except Exception as e:
        facts[name] = f"missing: {e!r}"
try:  # what the models and checkpoints.py import: transformers' lazy imports fail only here
    from transformers import DistilBertForSequenceClassification
    facts["distilbert"] = "ok"
except Exception as e:
    facts["distilbert"] = f"missing: {e!r}"[:1500]
print(json.dumps(facts))
"""


# ---------------------------------------------------------------- the served step (a child process)


def model_statistics(http_url: str, model: str, metrics_url: str) -> dict:
    with urllib.request.urlopen(f"{http_url}/v2/models/{model}/stats", timeout=10) as response:
        stats = json.loads(response.read())["model_stats"][0]
    counters = {
        "inferences": float(stats.get("inference_count", 0)),
        "executions": float(stats.get("execution_count", 0)),
    }
    metrics = urllib.request.urlopen(metrics_url, timeout=10).read().decode()
    for name in ("forward_passes", "forward_duration_us", "forward_real_tokens"):
        match = re.search(rf'clf_{name}_total{{model="{model}",version="1"}} ([0-9.e+]+)', metrics)
        counters[name] = float(match.group(1)) if match else None
    return counters


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # so that the server is stopped on the way out


def served(params: dict) -> int:
    """Export the served models, start tritonserver, run perf_analyzer; results to params['out'] as they come."""
    from export import ServingConfig, write_model
    from launch import LocalServer, ServerStartError, options_on_free_ports
    from perf_analyzer import run_perf_analyzer
    from perf_input import token_input_data

    deadline = time.monotonic() + params["budget_s"]
    signal.signal(signal.SIGTERM, _interrupt)
    raw, out = Path(params["raw"]), Path(params["out"])
    ids = json.loads(Path(params["texts"]).read_text())["ids"]
    repository = Path(params["workdir"]) / "repository"
    kind, precision = params["kind"], params["precision"]
    models = {}
    for model, _, _ in params["runs"]:
        if model not in models:
            instances = int(model.rsplit("_x", 1)[1]) if "_x" in model else 1
            # An unbounded queue: a closed loop of N callers bounds it anyway, and a bound below N
            # (the default's 64) would refuse requests at concurrency 256 rather than measure them.
            config = ServingConfig(
                model_name=model, instance_kind=kind, instance_count=instances, precision=precision,
                forward_mode="padded" if "_padded" in model else "packed",
                max_batch_size=SERVED_BATCH, max_forward_tokens=SERVED_FORWARD_TOKENS,
                max_queue_size=0, queue_timeout_us=0,
            )  # fmt: skip
            write_model(Path(params["checkpoint"]), repository, config)
            models[model] = instances
    # -b 1: each text at its own length. -b 32: perf_analyzer (2.48) needs one shape across all of its
    # data, so every text is padded to the longest, with a mask; the model drops the padding before its
    # forward (clf_serving/validation.py): it costs wire bytes, not compute (benchmarks/perf_input.py).
    inputs = {1: raw / "perf_input.json", TEXTS_PER_REQUEST: raw / "perf_input_padded.json"}
    inputs[1].write_text(json.dumps(token_input_data(ids)))
    inputs[TEXTS_PER_REQUEST].write_text(json.dumps(token_input_data(ids, padded=True)))
    result: dict = {
        "kind": kind,
        "precision": precision,
        "models": models,
        "runs": [],
        "skipped": [],
        "batch_requests_padded_to": max(map(len, ids)),
        "mean_tokens": sum(map(len, ids)) / len(ids),
    }

    def save():
        out.write_text(json.dumps(result, indent=1))

    server = LocalServer(options_on_free_ports(repository, exit_timeout_s=10), log_path=raw / "tritonserver.log")
    try:
        started = time.monotonic()
        server.start(timeout_s=max(30.0, min(300.0, deadline - time.monotonic() - RUN_SECONDS)))
        result["startup_s"] = time.monotonic() - started
        log = server.log_path.read_text(errors="replace")
        # model.py logs "<model>: ..., <precision> on <device>, ..." from each instance's initialize.
        result["instances_on"] = {
            model: re.findall(rf"{re.escape(model)}: [^\n]*? on (cuda:\d+|cpu)\b", log) for model in models
        }
        print(f"server ready in {result['startup_s']:.0f}s; instances on {result['instances_on']}", flush=True)
        save()
        for model, per_request, concurrency in params["runs"]:
            label = f"{model} {per_request} text(s)/request c={concurrency}"
            if deadline - time.monotonic() < RUN_SECONDS:
                result["skipped"].append(f"{label}: out of time")
                continue
            before = model_statistics(server.http_url, model, server.metrics_url)
            began = time.monotonic()
            try:
                perf = run_perf_analyzer(
                    model, server.grpc_url, inputs[per_request], concurrency=concurrency,
                    measurement_interval_ms=params["interval_ms"], stability_percentage=1000,
                    extra_args=("-b", str(per_request)),
                )  # fmt: skip
            except RuntimeError as error:
                result["runs"].append(
                    {
                        "model": model,
                        "texts_per_request": per_request,
                        "concurrency": concurrency,
                        "error": str(error)[-1500:],
                    }
                )
                print(f"{label}: perf_analyzer failed: {str(error)[-600:]}", flush=True)
                save()
                continue
            wall = time.monotonic() - began
            after = model_statistics(server.http_url, model, server.metrics_url)
            delta = {
                k: (after[k] - before[k]) if after[k] is not None and before[k] is not None else None for k in after
            }
            run = {
                "model": model,
                "instances": models[model],
                "texts_per_request": per_request,
                "concurrency": concurrency,
                "seq_s": perf.throughput,
                **{k: getattr(perf, k) for k in ("p50_ms", "p90_ms", "p95_ms", "p99_ms")},
                "texts_per_execute": delta["inferences"] / delta["executions"] if delta["executions"] else None,
                # Share of the run's wall time the instances spent in forward passes (summed over instances).
                "forward_busy": delta["forward_duration_us"] / 1e6 / wall / models[model]
                if delta["forward_duration_us"] is not None
                else None,
            }
            result["runs"].append(run)
            print(
                f"{label}: {perf.throughput:,.0f} seq/s, p50 {perf.p50_ms:.1f} ms, p99 {perf.p99_ms:.1f} ms, "
                f"{run['texts_per_execute'] or 0:.0f} texts/execute",
                flush=True,
            )
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
    try:
        lines = (raw / "pytest.log").read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    summary = [line for line in lines if re.search(r"\b(passed|failed|skipped|error|no tests ran)\b", line)]
    return summary[-1].strip("= ") if summary else ""


def figures(check: Check) -> list[dict]:
    """Each figure beside its target: rows of (figure, value, target, met: True/False/None)."""
    raw, t = check.raw, TARGETS
    rows: list[dict] = []

    def row(figure: str, value: str, target: str = "", met: bool | None = None) -> None:
        rows.append({"figure": figure, "value": value, "target": target, "met": met})

    outcome = pytest_outcome(raw)
    if outcome:
        row("pytest tests/gpu", outcome, "all pass", "failed" not in outcome and "error" not in outcome)
    ceiling = _read_json(raw / "ceiling.json")
    precisions = ceiling.get("precisions", {})
    rate = ceiling.get("dense_bf16_tflops")
    if rate:
        row("dense bf16 matrix product, 8192³", f"{rate:.0f} TFLOP/s", "yardstick (~790 measured before)")
    bf16 = precisions.get("bf16")
    if bf16 and rate:
        packed = bf16["fixed128"]["packed_best"]
        goal = t["fixed128_dense_fraction"] * rate * 1e12 / (85e6 * 128)
        achieved = packed * 85e6 * 128 / 1e12
        row(
            "packed bf16, 128-token batches (in-process)",
            f"{packed:,.0f} seq/s = {achieved:.0f} TFLOP/s at 85 MFLOP/token ({100 * achieved / rate:.0f} % of dense)",
            f"≥ {goal:,.0f} seq/s (40 % of dense)",
            packed >= goal,
        )
    for precision, entry in precisions.items():
        texts = entry["texts"]
        ratio = texts["packed_best"] / texts["transformers_best"]
        is_target = precision in ("bf16", "fp16")
        row(
            f"{precision} real texts (in-process): packed vs transformers padded",
            f"{texts['packed_best']:,.0f} vs {texts['transformers_best']:,.0f} seq/s = {ratio:.2f} ×",
            f"≥ {t['packed_vs_transformers_texts']} ×" if is_target else "",
            ratio >= t["packed_vs_transformers_texts"] if is_target else None,
        )
        fixed = entry["fixed128"]
        row(
            f"{precision} 128-token batches (in-process): packed / transformers",
            f"{fixed['packed_best']:,.0f} / {fixed['transformers_best']:,.0f} seq/s; single text {entry['single_text_ms']:.2f} ms",
        )
        if sweep := entry.get("attention_overhead_tokens"):
            row(
                f"{precision} packed on the real texts by attention_overhead_tokens (default first)",
                ", ".join(f"{k}: {v:,.0f}" for k, v in sweep.items()) + " seq/s",
            )
        if cudnn := entry.get("sdpa_cudnn"):
            row(
                f"{precision} single text with cuDNN attention (new lengths, then again) / without (as served)",
                f"{cudnn['cudnn_first_pass']:.2f}, {cudnn['cudnn_second_pass']:.2f} / {cudnn['without_cudnn']:.2f} ms",
            )
    served_result = _read_json(raw / "served.json")
    runs = [r for r in served_result.get("runs", []) if "seq_s" in r]
    served_as = f"served {served_result.get('precision')} ({served_result.get('kind')})"
    ceiling_bf16 = max(bf16["texts"]["packed_best"], bf16["texts"]["transformers_best"]) if bf16 else None
    batch_runs = [r for r in runs if r["texts_per_request"] > 1]
    if batch_runs:
        best = max(batch_runs, key=lambda r: r["seq_s"])
        label = f"{best['model']}, c={best['concurrency']}"
        if ceiling_bf16:
            ratio = best["seq_s"] / ceiling_bf16
            row(
                f"{served_as}, {TEXTS_PER_REQUEST}-text requests (best: {label})",
                f"{best['seq_s']:,.0f} seq/s = {ratio:.2f} × in-process ceiling ({ceiling_bf16:,.0f})",
                f"≥ {t['served_batch_vs_ceiling']} ×",
                ratio >= t["served_batch_vs_ceiling"],
            )
        else:
            row(
                f"{served_as}, {TEXTS_PER_REQUEST}-text requests (best: {label})",
                f"{best['seq_s']:,.0f} seq/s",
                "≥ 0.8 × ceiling (no ceiling measured)",
            )
    single_runs = [r for r in runs if r["texts_per_request"] == 1]
    if single_runs:
        best = max(single_runs, key=lambda r: r["seq_s"])
        row(
            f"{served_as}, single-text requests (best: {best['model']}, c={best['concurrency']})",
            f"{best['seq_s']:,.0f} seq/s",
            f"≥ {t['served_single_seq_s']:,} seq/s",
            best["seq_s"] >= t["served_single_seq_s"],
        )
    for r in runs:
        busy = f", forward busy {100 * r['forward_busy']:.0f} %" if r.get("forward_busy") is not None else ""
        per_execute = f", {r['texts_per_execute']:.0f} texts/execute" if r.get("texts_per_execute") else ""
        row(
            f"  {r['model']} {r['texts_per_request']} text(s)/request, c={r['concurrency']}",
            f"{r['seq_s']:,.0f} seq/s, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms{per_execute}{busy}",
        )
    for model, devices in served_result.get("instances_on", {}).items():
        on_gpu = bool(devices) and all(d.startswith("cuda") for d in devices)
        row(f"{model}: instances placed on", ", ".join(devices) or "(not in the server log)", "cuda", on_gpu)
    fp32 = ceiling.get("fp32_gpu_vs_cpu_transformers")
    if fp32:
        for way, c in fp32.items():
            row(
                f"fp32 GPU ({way}, TF32 off) vs CPU transformers: max abs Δlogit",
                f"{c['max_abs_diff']:.2e} over {c['count']} texts",
                "≤ 1e-4",
                c["max_abs_diff"] <= t["fp32_max_abs_diff"],
            )
    for precision, c in ceiling.get("agreement_random_weights", {}).items():
        row(
            f"{precision} argmax agreement with fp32 — RANDOM weights, not the target's checkpoint",
            f"{c['agree']}/{c['count']} ({100 * c['argmax_agreement']:.2f} %), max abs Δ {c['max_abs_diff']:.2e}",
            "≥ 99.5 % is judged on real weights: second call",
        )
    return rows


def write_summary(check: Check, facts: dict, final_line: str) -> None:
    rows = figures(check)
    device = facts.get("gpu") or "no CUDA device"
    lines = [
        "# GPU check",
        "",
        f"Machine: {device}; Python {facts.get('python')}, torch {facts.get('torch')} (CUDA {facts.get('torch_cuda')}), "
        f"transformers {facts.get('transformers')}. Bundle built {facts.get('manifest', {}).get('built')}.",
        "",
        "| step | status | seconds | detail |",
        "| --- | --- | --- | --- |",
        *(f"| {s.name} | {s.status} | {s.seconds:.0f} | {s.detail} |" for s in check.steps),
        "",
    ]
    if facts.get("problems"):
        lines += ["Environment problems:", *(f"- {p}" for p in facts["problems"]), ""]
    if rows:
        lines += ["| figure | value | target | met |", "| --- | --- | --- | --- |"]
        mark = {True: "✓", False: "✗", None: ""}
        lines += [f"| {r['figure']} | {r['value']} | {r['target']} | {mark[r['met']]} |" for r in rows]
        lines.append("")
    lines.append(final_line)
    text = "\n".join(lines) + "\n"
    (check.out / "summary.md").write_text(text)
    (check.out / "summary.json").write_text(
        json.dumps(
            {"steps": [asdict(s) for s in check.steps], "figures": rows, "environment": facts, "result": final_line},
            indent=1,
        )
    )
    check.say("\n" + text)


def pack_raw(check: Check) -> None:
    with tarfile.open(check.out / "raw.tar.gz", "w:gz") as tar:
        tar.add(check.raw, arcname="raw")


# ---------------------------------------------------------------- main


def run_check(args) -> int:
    out = args.out or Path(os.environ.get("OUT") or PROJECT / "bench-results" / time.strftime("gpu-%Y%m%d-%H%M%S"))
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    raw = workdir / "raw"
    raw.mkdir()
    log = open(out / "check.log", "w")  # noqa: SIM115 - closed in finally
    check = Check(out=out, raw=raw, log=log, deadline=time.monotonic() + args.budget_s, skip=set(args.skip or ()))
    facts: dict = {}
    try:
        return _run_steps(check, args, workdir, facts)
    finally:
        with contextlib.suppress(OSError):
            pack_raw(check)
        log.close()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def _run_steps(check: Check, args, workdir: Path, facts: dict) -> int:
    started = time.monotonic()
    if not args.bundle.exists():
        check.record(StepResult("unpack", "failed", 0, f"{args.bundle} missing: build it with `make gpu-bundle`"))
        write_summary(check, facts, f"GPU check FAILED: no bundle at {args.bundle}")
        return 1
    root = unpack(args.bundle, workdir)
    check.record(
        StepResult(
            "unpack", "ok", time.monotonic() - started, f"{args.bundle.stat().st_size / 2**20:.1f} MiB into {root}"
        )
    )
    env = child_environment(root, workdir)

    started = time.monotonic()
    facts.update(environment(root, env))
    (check.raw / "environment.json").write_text(json.dumps(facts, indent=1))
    summary = (
        f"Python {facts.get('python')}, torch {facts.get('torch')}, CUDA {'yes: ' + str(facts.get('gpu')) if facts.get('cuda') else 'no'}; "
        f"tritonclient {facts.get('tritonclient.grpc')}"
    )
    check.record(
        StepResult("environment", "ok" if not facts["problems"] else "failed", time.monotonic() - started, summary)
    )
    for problem in facts["problems"]:
        check.say(f"   problem: {problem}")

    checkpoints = workdir / "checkpoints"
    sizes = ["full"] + (["tiny"] if args.cpu_smoke and not facts.get("cuda") else [])
    for size in sizes:
        step = check.run(
            "checkpoint" if size == "full" else "checkpoint-tiny",
            [sys.executable, "build/checkpoints.py", "--size", size, "--problem-type", "single_label_classification", "--out", str(checkpoints)],
            env,
            check.timeout_for("checkpoint"),
        )  # fmt: skip
        if step.status != "ok":
            write_summary(check, facts, "GPU check FAILED: no checkpoint")
            return 1
    checkpoint = checkpoints / "full-single"
    env[CHECKPOINT_ENV] = str(checkpoint)
    texts = root / "data" / "texts.json"

    if not facts.get("cuda"):
        remaining = "; ".join(AFTER_CUDA.values())
        if args.cpu_smoke and facts["server_possible"]:
            _served_step(
                check, env, workdir, checkpoints / "tiny-single", texts, "cpu", CPU_SMOKE_RUNS, "served-cpu-smoke"
            )
        for name in AFTER_CUDA:
            check.record(StepResult(name, "not run", 0, "CUDA not available"))
        message = f"CUDA not available: not run: {remaining}"
        write_summary(check, facts, message)
        return 2

    skip = check.skip
    for name in sorted(skip):
        check.record(StepResult(name, "not run", 0, SKIPPED))
    if "pytest" not in skip:
        check.run(
            "pytest",
            [sys.executable, "-m", "pytest", "tests/gpu", "-q", "-p", "no:cacheprovider", "-rs"],
            env,
            check.timeout_for("pytest"),
        )
    if "ceiling" not in skip:
        timeout = check.timeout_for("ceiling")
        check.run(
            "ceiling",
            [sys.executable, "benchmarks/gpu_ceiling.py", "measure", "--checkpoint", str(checkpoint),
             "--texts", str(texts), "--out", str(check.raw / "ceiling.json"), "--budget-s", str(max(10, timeout - 45))],
            env,
            timeout,
        )  # fmt: skip
    if "served" not in skip:
        if facts["server_possible"]:
            _served_step(check, env, workdir, checkpoint, texts, "gpu", GPU_RUNS)
        else:
            check.record(StepResult("served", "not run", 0, "; ".join(facts["problems"])))
    failed = [s.name for s in check.steps if s.status != "ok" and s.detail != SKIPPED]
    final = (
        f"GPU check: every step ran in {args.budget_s - check.remaining():.0f}s"
        if not failed
        else f"GPU check: steps not ok: {', '.join(failed)}"
    )
    write_summary(check, facts, final)
    return 1 if failed else 0


def _served_step(
    check: Check, env: dict, workdir: Path, checkpoint: Path, texts: Path, kind: str, runs, name: str = "served"
) -> StepResult:
    timeout = check.timeout_for("served")
    params = {
        "workdir": str(workdir),
        "raw": str(check.raw),
        "out": str(check.raw / "served.json"),
        "checkpoint": str(checkpoint),
        "texts": str(texts),
        "kind": kind,
        "precision": "bf16" if kind == "gpu" else "fp32",
        "runs": runs,
        "interval_ms": 2000 if kind == "gpu" else 1000,
        "budget_s": timeout - 25,  # room to stop the server
    }
    params_file = workdir / "served-params.json"
    params_file.write_text(json.dumps(params))
    return check.run(
        name, [sys.executable, str(Path(__file__).resolve()), "--served-step", str(params_file)], env, timeout
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=BUNDLE, help="benchmarks/gpu_bundle.py's output")
    parser.add_argument(
        "--out",
        type=Path,
        help="folder for the results (default: $OUT where set, as on the device machine; else bench-results/gpu-<time>)",
    )
    parser.add_argument(
        "--budget-s", type=float, default=450, help="all steps together (the device allows 600 per call)"
    )
    parser.add_argument(
        "--cpu-smoke", action="store_true", help="without CUDA: serve a tiny model on the CPU from the bundle"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (unpacked bundle, checkpoints)")
    parser.add_argument("--skip", action="append", choices=list(AFTER_CUDA), help="a step not to run (a rerun's time)")
    parser.add_argument("--served-step", type=Path, help=argparse.SUPPRESS)  # internal: the served step's child
    args = parser.parse_args(argv)
    if args.served_step:
        return served(json.loads(args.served_step.read_text()))
    return run_check(args)


if __name__ == "__main__":
    sys.exit(main())
