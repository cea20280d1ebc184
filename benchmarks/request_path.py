"""The request path against the Python backend's floor: where a served request's time goes outside its forward.

    python benchmarks/request_path.py                     # tiny checkpoint, c=16 and c=64, ~3 minutes
    python benchmarks/request_path.py --py-spy 10         # and a py-spy profile of one token-model stub

One server holds three models on the ``tiny`` checkpoint (a forward of 16 texts takes ~1 ms), each with
the default export's batching (``max_batch_size``, instances, queue policy):

    null                   a Python-backend model that reads each request's ``input_ids`` and answers zero
                           logits: the floor of Triton, gRPC and the Python backend's IPC
    distilbert_classifier  the token model
    distilbert_text        the text model over it

perf_analyzer sends one real text per request. The report gives each model's rate and its ratio to the
floor; the CPU time each process spent per request (Triton, the stubs, perf_analyzer, from /proc), beside
the null model driven at the token model's rate, since the floor's own cost per request grows as its rate
falls; and the token model's time per request in each stage of ``execute`` (its counters
``clf_execute_stage_duration_us_total``).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from distilbert_serving.checkpoints import write_checkpoint
from distilbert_serving.corpus import english_texts
from distilbert_serving.export import ServingConfig, write_model, write_text_model
from distilbert_serving.launch import LocalServer, child_processes, options_on_free_ports
from distilbert_serving.load_test import model_metrics
from distilbert_serving.outcomes import FLUSH_S
from distilbert_serving.token_model.metrics import STAGES
from perf_analyzer import run_perf_analyzer
from perf_input import write_text_input_data, write_token_input_data

NULL = "null"
NULL_MODEL = """
import json

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.labels = int(json.loads(args["model_config"])["output"][0]["dims"][0])

    def execute(self, requests):
        responses = []
        for request in requests:
            rows = pb_utils.get_input_tensor_by_name(request, "input_ids").as_numpy().shape[0]
            zeros = np.zeros((rows, self.labels), dtype=np.float32)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("logits", zeros), pb_utils.Tensor("probabilities", zeros)]))
        return responses
"""


def write_null_model(repository: Path) -> None:
    """The floor: the token model's config (inputs, outputs, batching, instances), Python code that answers zeros."""
    token = repository / ServingConfig().model_name
    config = text_format.Parse((token / "config.pbtxt").read_text(), mc.ModelConfig())
    config.name, config.backend = NULL, "python"
    config.ClearField("parameters")
    config.ClearField("model_warmup")
    (repository / NULL / "1").mkdir(parents=True)
    (repository / NULL / "config.pbtxt").write_text(text_format.MessageToString(config))
    shutil.copy2(token / "labels.txt", repository / NULL / "labels.txt")
    (repository / NULL / "1" / "model.py").write_text(NULL_MODEL)


def cpu_seconds(server: LocalServer) -> dict[str, float]:
    """CPU seconds so far of Triton, of each model's stubs, and of this process's finished children (perf_analyzer)."""

    def used(pid: int) -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    seconds = {"tritonserver": used(server.process.pid)}
    for pid, _, args in child_processes(server.process.pid):
        stub = "stubs: " + args.split("/repository/", 1)[-1].split("/", 1)[0]
        seconds[stub] = seconds.get(stub, 0.0) + used(pid)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return seconds | {"perf_analyzer": children.ru_utime + children.ru_stime}


def measure(server: LocalServer, model: str, data: Path, level: int | None, rate: float | None, interval_ms: int):
    """perf_analyzer's result, the µs of CPU per request that each process spent (warm-up included), and
    the model's counters over the run."""
    names = {stage: f"clf_execute_stage_duration_us_total:{stage}" for stage in STAGES}
    names |= {"requests": "nv_inference_request_success", "executes": "clf_executes_total"}

    def counters() -> dict[str, float]:  # the token model's stage counters, its executes; any model's requests
        metrics = model_metrics(server.metrics_url, model)
        return {key: metrics.get(name, 0.0) for key, name in names.items()}

    before = cpu_seconds(server), counters()
    # windows within 30 %: other work on the machine moves the tiny model's rate
    result = run_perf_analyzer(model, server.grpc_url, data, level, rate, interval_ms, 30)
    time.sleep(FLUSH_S + 0.1)  # the stage counters reach Triton every FLUSH_S
    after = cpu_seconds(server), counters()
    counted = {key: after[1][key] - before[1][key] for key in after[1]}
    cpu = {name: (after[0][name] - before[0].get(name, 0.0)) * 1e6 / max(counted["requests"], 1) for name in after[0]}
    return result, cpu, counted


def profile(server: LocalServer, seconds: int, out: Path) -> None:
    """A py-spy flame graph of one token-model stub while perf_analyzer loads it (needs py-spy and ptrace)."""
    stubs = [pid for pid, name, args in child_processes(server.process.pid) if "distilbert_classifier_0" in args]
    if not stubs or not shutil.which("py-spy"):
        print("py-spy: no token-model stub or no py-spy (pip install py-spy)")
        return
    command = ["py-spy", "record", "-p", str(stubs[0]), "-d", str(seconds), "-o", str(out), "--format", "speedscope"]
    subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"py-spy: {out} (speedscope.app)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--texts", type=int, default=600)
    parser.add_argument("--interval-ms", type=int, default=5000, help="perf_analyzer's measurement interval")
    parser.add_argument("--py-spy", type=int, metavar="SECONDS", help="profile a token-model stub at the last level")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="request-path-"))
    checkpoint = write_checkpoint("tiny", "single_label_classification", work / "tiny")
    repository = work / "repository"
    write_model(checkpoint, repository, ServingConfig())
    write_text_model(checkpoint, repository, ServingConfig())
    write_null_model(repository)
    from transformers import AutoTokenizer

    texts = english_texts(args.texts)
    ids = AutoTokenizer.from_pretrained(checkpoint)(texts, truncation=True)["input_ids"]
    tokens = write_token_input_data(ids, work / "tokens.json")
    strings = write_text_input_data(texts, work / "text.json")
    token_model = ServingConfig().model_name
    inputs = {NULL: tokens, token_model: tokens, "distilbert_text": strings}

    server = LocalServer(options_on_free_ports(repository), log_path=work / "tritonserver.log").start()
    rows, stages, per_execute = [], {}, {}  # rows: (model, load, PerfResult, CPU µs per request by process)
    runs = [(level, model, data) for level in args.concurrency for model, data in inputs.items()]
    try:
        for level, model, data in runs:
            if args.py_spy and model == token_model and level == args.concurrency[-1]:
                profile(server, args.py_spy, work / "token-model.speedscope.json")
            try:
                result, cpu, counted = measure(server, model, data, level, None, args.interval_ms)
                rows.append((model, level, result, cpu))
                if model == token_model:
                    stages[level] = {s: counted[s] / max(counted["requests"], 1) for s in STAGES}
                    per_execute[level] = counted["requests"] / max(counted["executes"], 1)
                    matched = measure(server, NULL, data, None, result.throughput, args.interval_ms)  # open loop
                    rows.append((NULL, f"{result.throughput:,.0f}/s", *matched[:2]))
            except RuntimeError as error:
                print(f"{model} c={level}: {str(error).strip().splitlines()[-1]}")
    finally:
        server.stop()

    floor = {level: result.throughput for model, level, result, _ in rows if model == NULL}
    processes = sorted({name for *_, cpu in rows for name, us in cpu.items() if us >= 0.5})
    print("\nload: callers, or requests/s (open loop); then CPU µs per request by process")
    print(f"| model | load | requests/s | ÷ null | p50 ms | {' | '.join(processes)} |")
    print("| --- " * (5 + len(processes)) + "|")
    for model, level, result, cpu in rows:
        ratio = f"{result.throughput / floor[level]:.2f}" if isinstance(level, int) and level in floor else "-"
        cells = " | ".join(f"{cpu.get(p, 0.0):.0f}" for p in processes)
        print(f"| {model} | {level} | {result.throughput:,.0f} | {ratio} | {result.p50_ms:.1f} | {cells} |")
    print("\nToken model, µs per request in each stage of execute (includes requests from perf_analyzer's warm-up):")
    print("| stage | " + " | ".join(f"c={level}" for level in stages) + " |\n| --- |" + " --- |" * len(stages))
    for stage in (*STAGES, "total"):
        values = [sum(s.values()) if stage == "total" else s[stage] for s in stages.values()]
        print(f"| {stage} | " + " | ".join(f"{v:.0f}" for v in values) + " |")
    print("| requests per execute | " + " | ".join(f"{v:.1f}" for v in per_execute.values()) + " |")


if __name__ == "__main__":
    main()
