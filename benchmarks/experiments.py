"""The one-off measurements behind the design choices in docs/BENCHMARKS.md and RELIABILITY.md.

    python benchmarks/experiments.py queue-stall    # queue policy × instance count (× a heartbeat), tiny model
    python benchmarks/experiments.py instances      # 1 instance × 2 threads vs 2 × 1, full model, bf16
    python benchmarks/experiments.py c1-latency     # queue delay and OMP_WAIT_POLICY at concurrency 1, fp32
    python benchmarks/experiments.py c1-instances   # concurrency 1, fp32: one instance vs the default two, twice
    python benchmarks/experiments.py shared-cores   # 2 instances: a fixed thread each vs the cores shared by the busy
    python benchmarks/experiments.py batch-size     # max_batch_size 64 (the earlier default) vs 16, fp32, twice
    python benchmarks/experiments.py heap-growth    # RSS growth of the packed engine under mixed batches
    python benchmarks/experiments.py single-text    # one text in-process: both GEMM paths, ONNX Runtime, OpenVINO, fp32
    python benchmarks/experiments.py idle-spin      # libgomp's default idle spin vs the model's (cores.py), twice
    python benchmarks/experiments.py int8-gemm      # an encoder's linear layers: fp32 (oneDNN) vs int8, by rows
    python benchmarks/experiments.py ipc-cost       # a Python-backend model's calls to the server: counters, cancellation
    python benchmarks/experiments.py forward-size   # fp32 at 64 callers: larger server batches, one instance or two
    python benchmarks/experiments.py cpu-share      # fp32 and int8 at 16 and 64 callers: whose the cores' time is
    python benchmarks/experiments.py three-instances  # fp32 and int8: the default two instances vs three

Each prints one line per variant. Run on a quiet machine; quote the printed figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

import project_paths  # noqa: F401  (build/, docker/ and the models' packages by name)
from corpus import english_texts
from export import ServingConfig, write_model
from launch import LocalServer, options_on_free_ports
from perf_analyzer import model_counters, run_perf_analyzer
from perf_text import write_token_input_data

PROJECT = Path(__file__).resolve().parent.parent
FULL = PROJECT / "checkpoints" / "full-single"
TINY = PROJECT / "checkpoints" / "tiny-single"


def local_server(repository: Path) -> LocalServer:
    return LocalServer(options_on_free_ports(repository))


UNBOUNDED = dict(max_queue_size=0, queue_timeout_us=0)
# The token model's counters behind its own mean forward time (clf_serving/metrics.py).
FORWARD_COUNTERS = ("forward_duration_us", "forward_passes", "forward_sequences")


def forwards(before: dict, after: dict) -> tuple[float, float, float]:
    """(seconds in forwards, mean forward ms, texts per forward) between two reads of ``FORWARD_COUNTERS``."""
    seconds = (after["forward_duration_us"] - before["forward_duration_us"]) / 1e6
    passes = max(after["forward_passes"] - before["forward_passes"], 1)
    return seconds, seconds / passes * 1e3, (after["forward_sequences"] - before["forward_sequences"]) / passes


def one_instance(model_dir: Path) -> None:
    """Rewrite an exported model's config to one instance, keeping its queue policy: the combination
    export refuses (it stalls), written here only to show the stall."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    config = text_format.Parse((model_dir / "config.pbtxt").read_text(), mc.ModelConfig())
    config.instance_group[0].count = 1
    (model_dir / "config.pbtxt").write_text(text_format.MessageToString(config))


def queue_stall() -> None:
    """16 callers, same 5-token request, 8 s per variant, twice: latency with and without a queue policy.

    The stall is a missed wake-up of Triton's dynamic batcher (RELIABILITY.md §2): any new request
    ends it, so the "heartbeat" variant adds one request every 5 ms from a 17th caller.
    """
    import tritonclient.grpc as grpcclient

    # name → (config, one instance despite the policy, heartbeat seconds)
    variants = {
        "no queue policy, 1 instance": (ServingConfig(model_name="none_1", instance_count=1, **UNBOUNDED), False, 0),
        "max_queue_size 128, 1 instance": (ServingConfig(model_name="queue_1", max_queue_size=128), True, 0),
        "the same + a request every 5 ms": (ServingConfig(model_name="queue_1hb", max_queue_size=128), True, 0.005),
        "max_queue_size 128, 2 instances x 1 thread": (
            ServingConfig(model_name="queue_2", max_queue_size=128),
            False,
            0,
        ),
    }
    repository = Path(tempfile.mkdtemp())
    for serving, single, _ in variants.values():
        model_dir = write_model(TINY, repository, serving)
        if single:
            one_instance(model_dir)
    ids = np.array([[101, 2000, 2001, 2002, 102]], dtype=np.int64)

    def request():
        tensor = grpcclient.InferInput("input_ids", list(ids.shape), "INT64")
        tensor.set_data_from_numpy(ids)
        return tensor

    with local_server(repository) as server:
        for name, (serving, _, heartbeat_s) in [*variants.items(), *variants.items()]:
            latencies: list[float] = []
            stop = time.monotonic() + 8

            def caller(model=serving.model_name, latencies=latencies, stop=stop):
                client = grpcclient.InferenceServerClient(server.grpc_url)
                while time.monotonic() < stop:
                    started = time.perf_counter()
                    client.infer(model, [request()])
                    latencies.append(time.perf_counter() - started)

            def heartbeat(model=serving.model_name, stop=stop, every=heartbeat_s):
                client = grpcclient.InferenceServerClient(server.grpc_url)
                while time.monotonic() < stop:
                    client.async_infer(model, [request()], callback=lambda *args, **kwargs: None)
                    time.sleep(every)

            threads = [threading.Thread(target=caller) for _ in range(16)]
            threads += [threading.Thread(target=heartbeat)] if heartbeat_s else []
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            ms = np.array(latencies) * 1e3
            print(f"{name}: {len(ms)} requests, p50 {np.median(ms):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms, "
                  f"max {ms.max():.1f} ms, 450-650 ms: {((ms > 450) & (ms < 650)).sum()}", flush=True)  # fmt: skip


def exported(variants: dict[str, ServingConfig]) -> tuple[Path, Path]:
    """A model repository with the full model exported as each variant, and perf_analyzer's input data:
    the corpus's 600 texts as token ids."""
    from transformers import AutoTokenizer

    repository = Path(tempfile.mkdtemp())
    for serving in variants.values():
        write_model(FULL, repository, serving)
    ids = AutoTokenizer.from_pretrained(FULL)(english_texts(600), truncation=True)["input_ids"]
    return repository, write_token_input_data(ids, repository / "input_data.json")


def perf_variants(
    variants: dict[str, ServingConfig], loads: tuple[int, ...], env: dict[str, str] | None = None
) -> None:
    repository, data = exported(variants)
    os.environ.update(env or {})
    with local_server(repository) as server:
        for concurrency in loads:
            for name, serving in variants.items():
                before = model_counters(server.metrics_url, serving.model_name, "clf", FORWARD_COUNTERS)
                result = run_perf_analyzer(
                    serving.model_name, server.grpc_url, data, concurrency=concurrency,
                    measurement_interval_ms=5000, stability_percentage=30,
                )  # fmt: skip
                after = model_counters(server.metrics_url, serving.model_name, "clf", FORWARD_COUNTERS)
                # The model's own forward time (clf_forward_duration_us_total), warm-up windows included.
                _, mean_ms, texts = forwards(before, after)
                print(
                    f"{name} {env or ''} c={concurrency}: {result}, mean forward {mean_ms:.2f} ms of {texts:.1f} texts",
                    flush=True,
                )


def instances() -> None:
    common = dict(precision="bf16", instance_kind="cpu")
    perf_variants(
        {
            "1 instance x 2 threads, no queue policy": ServingConfig(
                model_name="one", instance_count=1, **UNBOUNDED, **common
            ),
            "2 instances x 1 thread, the default queue policy": ServingConfig(model_name="two", **common),
        },
        loads=(16, 64, 1),
    )


def c1_latency() -> None:
    variants = {
        "queue delay 500 us": ServingConfig(model_name="d500", instance_kind="cpu", instance_count=1, **UNBOUNDED),
        "queue delay 100 us": ServingConfig(
            model_name="d100", instance_kind="cpu", instance_count=1, max_queue_delay_us=100, **UNBOUNDED
        ),
    }
    for env in ({}, {"OMP_WAIT_POLICY": "PASSIVE"}):
        perf_variants(variants, loads=(1,), env=env)


def c1_instances() -> None:
    """Concurrency 1, fp32: does a lone caller pay for the two instances taking turns (each with its own
    copy of the weights, so neither copy stays in cache)? Twice, to see the noise."""
    one = ServingConfig(model_name="one", instance_kind="cpu", instance_count=1, **UNBOUNDED)
    two = ServingConfig(model_name="two", instance_kind="cpu")
    for _ in range(2):
        perf_variants({"1 instance, 2 threads": one, "2 instances sharing the cores (the default)": two}, loads=(1,))


def shared_cores() -> None:
    perf_variants(
        {
            "2 instances x 1 fixed thread": ServingConfig(model_name="fixed", instance_kind="cpu", cpu_threads=1),
            "2 instances sharing the cores (the default)": ServingConfig(model_name="shared", instance_kind="cpu"),
        },
        loads=(1, 2, 4, 16, 64),
    )


def idle_spin() -> None:
    from clf_serving.cores import OPENMP_IDLE_SPIN

    default = ServingConfig(model_name="spin", instance_kind="cpu")
    for _ in range(2):
        for spin in ("300000", OPENMP_IDLE_SPIN["GOMP_SPINCOUNT"]):  # libgomp's own default, then the model's
            perf_variants({f"GOMP_SPINCOUNT {spin}": default}, loads=(1, 4, 16, 64), env={"GOMP_SPINCOUNT": spin})


def median_ms(run) -> float:
    """Median milliseconds of ``run()`` over 30 calls, after 5 to warm up."""
    for _ in range(5):
        run()
    times = []
    for _ in range(30):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


def int8_gemm() -> None:
    import torch

    from clf_serving.gemm import Linear

    torch.set_num_threads(2)
    torch.manual_seed(0)
    shapes = [(2304, 768), (768, 768), (3072, 768), (768, 3072)]  # qkv, out, lin1, lin2
    # Six layers' weights, so that each call streams them from memory as a forward does.
    weights = [(torch.randn(shape) * 0.02, torch.randn(shape[0]) * 0.02) for shape in shapes * 6]
    layers = {path: [Linear(w, b, path) for w, b in weights] for path in ("onednn", "int8")}
    for rows in (1, 20, 80, 256, 1024):
        inputs = [torch.randn(rows, w.shape[1]) for w, _ in weights]
        ms = {
            path: median_ms(lambda linears=linears, inputs=inputs: [f(x) for f, x in zip(linears, inputs, strict=True)])
            for path, linears in layers.items()
        }
        print(f"{rows} rows: fp32 onednn {ms['onednn']:.2f} ms, int8 {ms['int8']:.2f} ms, "
              f"{ms['onednn'] / ms['int8']:.2f} x", flush=True)  # fmt: skip


def batch_size() -> None:
    variants = {
        "max_batch_size 64": ServingConfig(model_name="b64", instance_kind="cpu", max_batch_size=64),
        "max_batch_size 16 (the default)": ServingConfig(model_name="b16", instance_kind="cpu"),
    }
    perf_variants(variants, loads=(16, 64, 16, 64))


def three_instances() -> None:
    """fp32 and int8, the default two instances against three, at 64, 16 and 64 callers: can a third
    instance fill the cores while the other two are between forwards?"""
    for precision in ("fp32", "int8"):
        variants = {
            f"{precision}, 2 instances (the default)": ServingConfig(
                model_name=f"{precision}_two", instance_kind="cpu", precision=precision
            ),
            f"{precision}, 3 instances": ServingConfig(
                model_name=f"{precision}_three", instance_kind="cpu", precision=precision, instance_count=3
            ),
        }
        perf_variants(variants, loads=(64, 16, 64))


def forward_size() -> None:
    """fp32 at 64 callers, twice: does the server gain from larger forwards? The packed forward in-process
    is fastest at ~2,048-token batches (docs/BENCHMARKS.md); the server's are ≤ 16 texts (~540 tokens)."""
    variants = {
        "2 instances, max_batch_size 16 (the default)": ServingConfig(model_name="b16", instance_kind="cpu"),
        "2 instances, max_batch_size 64": ServingConfig(model_name="b64", instance_kind="cpu", max_batch_size=64),
        "1 instance x 2 threads, max_batch_size 64": ServingConfig(
            model_name="one64", instance_kind="cpu", instance_count=1, max_batch_size=64, **UNBOUNDED
        ),
    }
    perf_variants(variants, loads=(64, 64))


# Processes by the name the kernel keeps (15 characters at most): who spends the cores' time under load.
PROCESS_ROLES = {"triton_python_b": "model instances", "tritonserver": "server", "perf_analyzer": "perf_analyzer"}


def cpu_seconds_by_role() -> dict[str, float]:
    """CPU seconds (user + system) that each role's live processes have spent so far, by pid."""
    tick = os.sysconf("SC_CLK_TCK")
    spent: dict[str, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # exited while listed
            continue
        name, fields = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()
        if (role := PROCESS_ROLES.get(name)) is not None:
            spent[f"{role} {stat.parent.name}"] = (int(fields[11]) + int(fields[12])) / tick
    return spent


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, all) CPU seconds of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    tick, total = os.sysconf("SC_CLK_TCK"), sum(values[:8])
    idle = values[3] + values[4]  # idle, iowait
    return (total - idle) / tick, total / tick


def cpu_share() -> None:
    """fp32 and int8 at 16 and 64 callers: the share of the two cores' time that the model instances, the
    server process and perf_analyzer each took while perf_analyzer ran, beside the instances' forward
    time. In-process runtimes have the cores to themselves; served, the load generator and gRPC run on
    them too, so this bounds what served ÷ in-process can reach on this machine."""
    variants = {
        "fp32": ServingConfig(model_name="fp32", instance_kind="cpu"),
        "int8": ServingConfig(model_name="int8", instance_kind="cpu", precision="int8"),
    }
    repository, data = exported(variants)
    with local_server(repository) as server:
        for concurrency in (16, 64):
            for name, serving in variants.items():
                last: dict[str, float] = {}
                done = threading.Event()

                def sample(last=last, done=done) -> None:  # perf_analyzer's own times vanish when it exits
                    while not done.wait(0.1):
                        last.update(cpu_seconds_by_role())

                sampler = threading.Thread(target=sample)
                # The counters first: reading them waits out their flush interval, which must stay outside
                # the window the machine's and the processes' times are taken over.
                before = model_counters(server.metrics_url, serving.model_name, "clf", FORWARD_COUNTERS)
                first = cpu_seconds_by_role()
                busy, total = machine_busy_seconds()
                started = time.monotonic()
                sampler.start()
                result = run_perf_analyzer(
                    serving.model_name, server.grpc_url, data, concurrency=concurrency,
                    measurement_interval_ms=5000, stability_percentage=30,
                )  # fmt: skip
                done.set()
                sampler.join()
                busy_after, total_after = machine_busy_seconds()
                wall = time.monotonic() - started
                after = model_counters(server.metrics_url, serving.model_name, "clf", FORWARD_COUNTERS)
                cores = (total_after - total) / wall
                by_role: dict[str, float] = {}
                for key, seconds in last.items():
                    role = key.rsplit(" ", 1)[0]
                    by_role[role] = by_role.get(role, 0.0) + seconds - first.get(key, 0.0)
                by_role["everything else"] = (busy_after - busy) - sum(by_role.values())
                by_role["idle"] = (total_after - total) - (busy_after - busy)
                forward_s, mean_ms, texts = forwards(before, after)
                shares = ", ".join(f"{role} {s / (wall * cores):.0%}" for role, s in by_role.items())
                print(
                    f"{name} c={concurrency}: {result.throughput:.1f} seq/s over {wall:.0f} s on {cores:.1f} cores: "
                    f"{shares}; forwards {forward_s / (wall * cores):.0%} of the cores' time, "
                    f"{mean_ms:.0f} ms each for {texts:.1f} texts",
                    flush=True,
                )


HEAP_PROBE = """
import sys, time, numpy as np, torch
sys.path[:0] = [sys.argv[1], sys.argv[2]]
from clf_serving.engine import ClassifierEngine
from clf_serving.settings import ServingSettings
from clf_serving.validation import Sequence
from corpus import english_texts
from transformers import AutoTokenizer
def rss_mib():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]) / 1024
torch.set_num_threads(2)
ids = [np.array(r) for r in AutoTokenizer.from_pretrained(sys.argv[3])(english_texts(600), truncation=True)["input_ids"]]
engine = ClassifierEngine.load(sys.argv[3], torch.device("cpu"), ServingSettings())
rng = np.random.default_rng(0)
def run(seconds):
    end, done = time.time() + seconds, 0
    while time.time() < end:
        pick = rng.choice(len(ids), int(rng.integers(1, 65)), replace=False)
        engine.classify([Sequence(ids[i], None) for i in pick])
        done += len(pick)
    return done
run(15)
base = rss_mib()
done = run(40)
print(f"RSS {base:.0f} -> {rss_mib():.0f} MiB ({(rss_mib() / base - 1) * 100:+.1f} %), {done / 40:.1f} seq/s")
"""


IPC_PROBE_CONFIG = """
name: "ipc_probe"
backend: "python"
max_batch_size: 16
input [ { name: "x" data_type: TYPE_INT64 dims: [ -1 ] } ]
output [ { name: "increment_us" data_type: TYPE_FP64 dims: [ 1 ] }, { name: "is_cancelled_us" data_type: TYPE_FP64 dims: [ 1 ] } ]
instance_group [ { kind: KIND_CPU count: 1 } ]
dynamic_batching { }
"""
IPC_PROBE_MODEL = """
import time
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def initialize(self, args):
        self.family = pb_utils.MetricFamily(name="ipc_probe_total", description="probe", kind=pb_utils.MetricFamily.COUNTER)
        self.counter = self.family.Metric(labels={"model": "ipc_probe"})

    def execute(self, requests):
        started = time.perf_counter()
        for _ in range(6):  # as many as the token model's counters per forward
            self.counter.increment(1)
        increment_us = (time.perf_counter() - started) / 6 * 1e6
        started = time.perf_counter()
        for request in requests:
            request.is_cancelled()
        is_cancelled_us = (time.perf_counter() - started) / len(requests) * 1e6
        out = [np.array([[increment_us]]), np.array([[is_cancelled_us]])]
        tensors = [pb_utils.Tensor(n, a) for n, a in zip(("increment_us", "is_cancelled_us"), out)]
        return [pb_utils.InferenceResponse(tensors) for _ in requests]
"""


def ipc_cost() -> None:
    """What one call from a Python-backend model to the server costs: ``Metric.increment`` and
    ``request.is_cancelled()``, timed inside a probe model over 1,000 lone requests (medians), and the
    request's whole round trip through gRPC and Triton as the client sees it."""
    import tritonclient.grpc as grpcclient

    with tempfile.TemporaryDirectory() as folder:
        model = Path(folder) / "ipc_probe"
        (model / "1").mkdir(parents=True)
        (model / "config.pbtxt").write_text(IPC_PROBE_CONFIG)
        (model / "1" / "model.py").write_text(IPC_PROBE_MODEL)
        with local_server(Path(folder)) as server:
            client = grpcclient.InferenceServerClient(server.grpc_url)
            request = grpcclient.InferInput("x", [1, 20], "INT64").set_data_from_numpy(np.ones((1, 20), np.int64))
            timings = {"round trip": [], "increment_us": [], "is_cancelled_us": []}
            for _ in range(1000):
                started = time.perf_counter()
                result = client.infer("ipc_probe", [request])
                timings["round trip"].append((time.perf_counter() - started) * 1e6)
                for name in ("increment_us", "is_cancelled_us"):
                    timings[name].append(float(result.as_numpy(name)[0, 0]))
    medians = {name: statistics.median(values) for name, values in timings.items()}
    print(
        f"Metric.increment {medians['increment_us']:.0f} µs, request.is_cancelled() {medians['is_cancelled_us']:.0f} µs, "
        f"a lone request's round trip through an empty model {medians['round trip']:.0f} µs (medians of 1,000)",
        flush=True,
    )


def heap_growth() -> None:
    """40 s of random 1–64-text batches after 15 s of warm-up, fp32, in a fresh process per setting."""
    model_dir = PROJECT / "model_repository" / "distilbert_classifier" / "1"
    for env in ({}, {"MALLOC_MMAP_THRESHOLD_": "1048576"}):
        output = subprocess.run(
            [sys.executable, "-c", HEAP_PROBE, str(PROJECT / "build"), str(model_dir), str(FULL)],
            env={**os.environ, **env}, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        print(f"{env or 'glibc defaults'}: {output.strip()}", flush=True)


def single_text() -> None:
    """One text of 16, 40 and 80 tokens in-process, 2 threads, fp32, median of 30 after 5 warm-ups, two
    rounds: the packed forward on each GEMM path beside ONNX Runtime (BERT fusions) and OpenVINO f32 on
    the same ids (what the concurrency-1 target compares with), and ``transformers`` at 40 tokens."""

    import torch

    from alternatives import export_onnx, fuse_for_bert, load_model, onnxruntime_forward, openvino_forward

    sys.path.insert(0, str(PROJECT / "model_repository" / "distilbert_classifier" / "1"))
    from clf_serving.packed import PackedClassifier

    torch.set_num_threads(2)
    model = load_model(FULL)
    rng = np.random.default_rng(0)
    texts = {n: np.concatenate([[101], rng.integers(1000, 20000, n - 2), [102]]).astype(np.int64) for n in (16, 40, 80)}
    with tempfile.TemporaryDirectory() as folder:
        onnx = export_onnx(model, Path(folder) / "model.onnx")
        fused, _ = fuse_for_bert(onnx, Path(folder) / "model-fused.onnx", model.config.n_heads, model.config.dim)
        forwards = {
            "ONNX Runtime (BERT fusions)": onnxruntime_forward(fused, 2),
            "OpenVINO f32": openvino_forward(onnx, "fp32", 2)[0],
        }
    for gemm in ("onednn", "aten"):
        packed = PackedClassifier(model, gemm=gemm)
        forwards[f"packed {gemm}"] = lambda ids, mask, packed=packed: packed.logits([ids[0]], [None])
    for round_ in (1, 2):
        for n, ids in texts.items():
            batch, mask = ids[None], np.ones((1, n), dtype=np.int64)
            ms = {name: median_ms(lambda f=f, b=batch, m=mask: f(b, m)) for name, f in forwards.items()}
            timings = ", ".join(f"{name} {t:.2f} ms" for name, t in ms.items())
            print(f"round {round_}, {n} tokens: {timings}", flush=True)
    with torch.inference_mode():
        ids = torch.from_numpy(texts[40])[None]
        print(f"transformers, 40 tokens: {median_ms(lambda: model(ids)):.2f} ms", flush=True)


EXPERIMENTS = {
    "queue-stall": queue_stall,
    "instances": instances,
    "c1-latency": c1_latency,
    "c1-instances": c1_instances,
    "shared-cores": shared_cores,
    "batch-size": batch_size,
    "heap-growth": heap_growth,
    "single-text": single_text,
    "idle-spin": idle_spin,
    "int8-gemm": int8_gemm,
    "ipc-cost": ipc_cost,
    "forward-size": forward_size,
    "cpu-share": cpu_share,
    "three-instances": three_instances,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", choices=sorted(EXPERIMENTS))
    EXPERIMENTS[parser.parse_args(argv).experiment]()


if __name__ == "__main__":
    main()
