"""Run ``perf_analyzer`` (from the tritonclient 2.48.0 wheel): as a command, or measured and parsed.

    python benchmarks/perf_analyzer.py -m distilbert_classifier -u localhost:8001 -i grpc ...   # any perf_analyzer arguments

The wheel's binary needs ``libb64.so.0d`` and ``libcudart.so.12``; the nvidia-pytriton wheel carries
both under mangled names, so a folder of symlinks under ``.tools/lib`` (ignored by git) is put on
``LD_LIBRARY_PATH``; no system package is needed. As a command this script does only that and then
becomes ``perf_analyzer`` with the arguments it was given (README, "Load testing with perf_analyzer");
the other tools call ``run_perf_analyzer``, and ``model_counters`` for what the server itself counted.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
LIBRARIES = {"libb64.so.0d": "libb64-*.so.0d", "libcudart.so.12": "libcudart-*.so.12*"}
# A folder with bin/perf_analyzer and lib/ (its libraries under the names it links), used instead of
# the installed wheels: the trimmed copy benchmarks/gpu_bundle.py ships to a GPU machine.
HOME_ENV = "PERF_ANALYZER_HOME"


@dataclass(frozen=True)
class PerfResult:
    throughput: float  # inferences (requests) per second
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    # Means per request from the server's statistics (None where perf_analyzer could not read them): time
    # in Triton's queue, and in the model (its input, execute and output stages together).
    server_queue_ms: float | None = None
    server_compute_ms: float | None = None


def binary() -> Path:
    path = Path(os.environ.get(HOME_ENV) or sys.prefix) / "bin" / "perf_analyzer"
    if not path.exists():
        raise FileNotFoundError(f"{path} missing: perf_analyzer ships in the tritonclient==2.48.0 wheel")
    return path


def library_dir() -> Path:
    if home := os.environ.get(HOME_ENV):
        return Path(home) / "lib"
    from distilbert_serving.launch import pytriton_root

    libs = pytriton_root().parent / "nvidia_pytriton.libs"
    folder = PROJECT / ".tools" / "lib"
    folder.mkdir(parents=True, exist_ok=True)
    for name, pattern in LIBRARIES.items():
        link = folder / name
        if not link.exists():
            link.symlink_to(next(libs.glob(pattern)))
    return folder


def environment() -> dict[str, str]:
    """This process's environment with perf_analyzer's libraries first on ``LD_LIBRARY_PATH``."""
    path = os.pathsep.join([str(library_dir()), os.environ.get("LD_LIBRARY_PATH", "")]).rstrip(os.pathsep)
    return {**os.environ, "LD_LIBRARY_PATH": path}


def run_perf_analyzer(
    model: str,
    url: str,
    input_data: Path,
    concurrency: int | None = None,
    request_rate: float | None = None,
    measurement_interval_ms: int = 5000,
    stability_percentage: int = 20,
    extra_args: tuple[str, ...] = (),
) -> PerfResult:
    """One closed-loop (``concurrency``) or open-loop (``request_rate``) measurement over gRPC."""
    if (concurrency is None) == (request_rate is None):
        raise ValueError("give exactly one of concurrency and request_rate")
    load = ["--concurrency-range", f"{concurrency}"] if concurrency else ["--request-rate-range", f"{request_rate}"]
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "perf.csv"
        command = [
            str(binary()), "-m", model, "-u", url, "-i", "grpc", "--input-data", str(input_data), *load,
            "--measurement-interval", str(measurement_interval_ms), "--max-trials", "10", "--stability-percentage", str(stability_percentage),
            "-f", str(report), *extra_args,
        ]  # fmt: skip
        completed = subprocess.run(command, capture_output=True, text=True, env=environment(), timeout=900)
        if completed.returncode != 0 or not report.exists():
            raise RuntimeError(
                f"perf_analyzer failed ({completed.returncode}):\n{completed.stdout[-3000:]}{completed.stderr[-3000:]}"
            )
        row = next(csv.DictReader(io.StringIO(report.read_text())))
    latencies = (float(row[f"p{p} latency"]) / 1e3 for p in (50, 90, 95, 99))
    compute = mean_ms(row, *(f"Server Compute {s}" for s in ("Input", "Infer", "Output")))
    return PerfResult(float(row["Inferences/Second"]), *latencies, mean_ms(row, "Server Queue"), compute)


def mean_ms(row: dict, *columns: str) -> float | None:
    """The sum of perf_analyzer's mean-µs ``columns``, in ms; None if any is absent (no server statistics)."""
    values = [row.get(column) for column in columns]
    return None if any(v in (None, "") for v in values) else sum(float(v) for v in values) / 1e3


def model_counters(metrics_url: str, model: str, since: dict[str, float] | None = None) -> dict[str, float]:
    """The token model's forward counters of ``model`` (``token_model/metrics.COUNTERS``), by key (0 for one
    not exported yet), less an earlier reading ``since``; after waiting out the models' ``FLUSH_S``, so that
    what the traffic just before was counted is in."""
    from distilbert_serving.load_test import model_metrics
    from distilbert_serving.outcomes import FLUSH_S
    from distilbert_serving.token_model.metrics import COUNTERS

    time.sleep(FLUSH_S + 0.1)
    metrics, since = model_metrics(metrics_url, model), since or {}
    return {key: metrics.get(name, 0.0) - since.get(key, 0.0) for key, (name, _) in COUNTERS.items()}


def main(argv: list[str] | None = None) -> None:
    """Become ``perf_analyzer`` with ``argv`` (a leading ``--`` is dropped) and its libraries on the path."""
    args = sys.argv[1:] if argv is None else argv
    args = args[1:] if args[:1] == ["--"] else args
    path = binary()
    os.execve(path, [str(path), *args], environment())


if __name__ == "__main__":
    main()
