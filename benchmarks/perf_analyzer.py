"""Run ``perf_analyzer`` (from the tritonclient 2.48.0 wheel) and parse its CSV.

The wheel's binary needs ``libb64.so.0d`` and ``libcudart.so.12``; the nvidia-pytriton
wheel carries both under mangled names, so a folder of symlinks under ``.tools/lib``
(ignored by git) is put on ``LD_LIBRARY_PATH``. No system package is needed.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
LIBRARIES = {"libb64.so.0d": "libb64-*.so.0d", "libcudart.so.12": "libcudart-*.so.12*"}


@dataclass(frozen=True)
class PerfResult:
    throughput: float  # inferences (requests) per second
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float


def binary() -> Path:
    path = Path(sys.prefix) / "bin" / "perf_analyzer"
    if not path.exists():
        raise FileNotFoundError(f"{path} missing: perf_analyzer ships in the tritonclient==2.48.0 wheel")
    return path


def library_dir() -> Path:
    spec = importlib.util.find_spec("pytriton")
    libs = Path(next(iter(spec.submodule_search_locations))).parent / "nvidia_pytriton.libs"
    folder = PROJECT / ".tools" / "lib"
    folder.mkdir(parents=True, exist_ok=True)
    for name, pattern in LIBRARIES.items():
        link = folder / name
        if not link.exists():
            link.symlink_to(next(libs.glob(pattern)))
    return folder


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
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join([str(library_dir()), env.get("LD_LIBRARY_PATH", "")]).rstrip(os.pathsep)
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "perf.csv"
        command = [
            str(binary()), "-m", model, "-u", url, "-i", "grpc", "--input-data", str(input_data), *load,
            "--measurement-interval", str(measurement_interval_ms), "--max-trials", "10", "--stability-percentage", str(stability_percentage),
            "-f", str(report), *extra_args,
        ]  # fmt: skip
        completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
        if completed.returncode != 0 or not report.exists():
            raise RuntimeError(
                f"perf_analyzer failed ({completed.returncode}):\n{completed.stdout[-3000:]}{completed.stderr[-3000:]}"
            )
        row = next(csv.DictReader(io.StringIO(report.read_text())))
    return PerfResult(
        throughput=float(row["Inferences/Second"]),
        p50_ms=float(row["p50 latency"]) / 1e3,
        p90_ms=float(row["p90 latency"]) / 1e3,
        p95_ms=float(row["p95 latency"]) / 1e3,
        p99_ms=float(row["p99 latency"]) / 1e3,
    )
