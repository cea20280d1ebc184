"""The README's perf_analyzer commands run as written against a real, restricted server.

README.md, "Load testing with perf_analyzer": the ```bash block after the marker comment is run
verbatim by ``bash -e`` in a scratch folder laid out like a checkout (``benchmarks``, ``.venv`` and
``model_repository`` linked in; the repository is the integration tests' one, whose token and text
models carry the product's names and the real tokenizer). Like ``make serve``, the server restricts
the statistics protocol to an admin key, so the commands only pass if they present it. What the
environment supplies is what a user's does: the server's address (``TRITON_GRPC``), the key
(``TRITON_ADMIN_KEY``) and short measurement windows (``PERF_ANALYZER_OPTIONS``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tritonclient.grpc as grpcclient

from distilbert_serving.launch import LocalServer, options_on_free_ports
from distilbert_serving.server_flags import GRPC_ADMIN_KEY_HEADER, generate_admin_key

PROJECT = Path(__file__).resolve().parents[2]
README = PROJECT / "README.md"
MARKER = "<!-- perf_analyzer commands: run by tests/integration/test_perf_analyzer_readme.py -->"
MODELS = ("distilbert_classifier", "distilbert_text")
THROUGHPUT = re.compile(r"Throughput: ([0-9.]+) infer/sec")
# 1-second windows, and the first three accepted: the machine running the tests is shared and noisy.
QUICK = "--measurement-interval 1000 --stability-percentage 1000 --max-trials 5"


def readme_commands() -> str:
    """The ```bash block right after the marker in the README's perf_analyzer section."""
    text = README.read_text()
    assert MARKER in text, f"README.md lost the marker {MARKER!r}"
    match = re.match(r"\s*```bash\n(.*?)^```", text.split(MARKER, 1)[1], re.S | re.M)
    assert match, "the marker must be followed by a ```bash block"
    return match.group(1)


@pytest.fixture(scope="module")
def restricted_server(model_repository, tmp_path_factory):
    """The integration repository served as `make serve` serves: statistics behind an admin key."""
    key = generate_admin_key()
    options = options_on_free_ports(model_repository, exit_timeout_s=10, admin_key=key)
    server = LocalServer(options, log_path=tmp_path_factory.mktemp("perf-readme") / "tritonserver.log")
    server.start(timeout_s=240)
    yield server, key
    server.stop()


def statistics(server: LocalServer, key: str) -> dict[str, tuple[int, int]]:
    """(successful, failed) request count per model, read with the admin key."""
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        counts = {}
        for model in MODELS:
            stats = client.get_inference_statistics(model, headers={GRPC_ADMIN_KEY_HEADER: key}, as_json=True)
            inference = stats["model_stats"][0]["inference_stats"]
            counts[model] = (int(inference["success"].get("count", 0)), int(inference["fail"].get("count", 0)))
        return counts


def test_readme_perf_analyzer_block_names_every_endpoint_and_presents_the_key():
    commands = readme_commands()
    runs = commands.count("benchmarks/perf_analyzer.py")
    assert runs >= 3
    assert commands.count(f"-H {GRPC_ADMIN_KEY_HEADER}:$TRITON_ADMIN_KEY") == runs
    assert "-m distilbert_classifier" in commands and "-m distilbert_text" in commands
    assert re.search(r"-b (\d+)", commands) and int(re.search(r"-b (\d+)", commands).group(1)) > 1


def test_readme_perf_analyzer_commands_run_against_a_restricted_server(restricted_server, tmp_path):
    server, key = restricted_server
    for name, target in ((".venv", Path(sys.prefix)), ("benchmarks", PROJECT / "benchmarks")):
        (tmp_path / name).symlink_to(target)
    (tmp_path / "model_repository").symlink_to(server.options.model_repository)
    env = {**os.environ, "TRITON_GRPC": server.grpc_url, "TRITON_ADMIN_KEY": key, "PERF_ANALYZER_OPTIONS": QUICK}
    before = statistics(server, key)

    commands = readme_commands()
    completed = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", commands],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=420,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, f"the README's commands failed ({completed.returncode}):\n{output[-4000:]}"
    throughputs = [float(value) for value in THROUGHPUT.findall(completed.stdout)]
    assert len(throughputs) == commands.count("benchmarks/perf_analyzer.py"), output[-4000:]
    assert all(value > 0 for value in throughputs), throughputs

    after = statistics(server, key)
    for model in MODELS:
        succeeded, failed = (a - b for a, b in zip(after[model], before[model], strict=True))
        assert succeeded > 0, f"{model}: no successful request in the server's statistics"
        assert failed == 0, f"{model}: {failed} requests failed"
