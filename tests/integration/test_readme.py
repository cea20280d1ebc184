"""The README's Python examples run as written against a real server and print what it shows.

The README's code is what most users copy first. Each ```python block is executed in order in
one namespace (a later block may use names an earlier one defined, as a reader would), against
a server that serves the model ``make serve`` serves: the full-size offline checkpoint, rebuilt
here from its fixed seed. The only substitutions are the server's address and the checkpoint's
folder. Where a ```text block follows, the printed output must match it: the same words, and
every number within 1e-4 (fp32 logits and scores; the last digit may differ between CPUs).
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import io
import re
from pathlib import Path

import pytest

from distilbert_serving.checkpoints import write_checkpoint
from distilbert_serving.export import ServingConfig, write_model, write_text_model
from distilbert_serving.launch import LocalServer, options_on_free_ports

README = Path(__file__).resolve().parents[2] / "README.md"
README_URL = "localhost:8001"
README_CHECKPOINT = "checkpoints/full-single"
NUMBER = re.compile(r"-?\d+\.\d+(?:e-?\d+)?")
FENCE = re.compile(r"^( *)```(\w*)\n(.*?)^\1```", re.S | re.M)


def readme_examples() -> list[tuple[str, str | None]]:
    """(python code, the text block printed after it or None), in README order."""
    blocks = [
        (lang, re.sub(rf"^{indent}", "", body, flags=re.M)) for indent, lang, body in FENCE.findall(README.read_text())
    ]
    examples = []
    for index, (lang, body) in enumerate(blocks):
        if lang == "python":
            following = blocks[index + 1] if index + 1 < len(blocks) else None
            examples.append((body, following[1] if following and following[0] == "text" else None))
    return examples


def same_output(printed: str, expected: str) -> bool:
    """The same words in the same order, and every number within 1e-4."""
    if NUMBER.sub("#", printed).split() != NUMBER.sub("#", expected).split():
        return False
    pairs = zip(NUMBER.findall(printed), NUMBER.findall(expected), strict=True)
    return all(abs(float(a) - float(b)) <= 1e-4 for a, b in pairs)


def run_block(code: str, namespace: dict) -> str:
    """Run one block, top-level ``await``/``async with`` included; return what it printed."""
    compiled = compile(code, "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = eval(compiled, namespace)  # noqa: S307 - the README's own examples
        if asyncio.iscoroutine(result):
            asyncio.run(result)
    return out.getvalue()


@pytest.fixture(scope="module")
def default_model_server(tmp_path_factory):
    """The model `make serve` serves: `build/checkpoints.py --size full` and export's defaults."""
    root = tmp_path_factory.mktemp("readme")
    checkpoint = write_checkpoint("full", "single_label_classification", root / "full-single")
    repository = root / "model_repository"
    write_model(checkpoint, repository, ServingConfig(precision="fp32"))
    write_text_model(checkpoint, repository, ServingConfig())
    server = LocalServer(options_on_free_ports(repository, exit_timeout_s=10), log_path=root / "tritonserver.log")
    server.start(timeout_s=300)
    yield server, checkpoint
    server.stop()


def test_readme_has_python_examples_with_their_output():
    examples = readme_examples()
    assert len(examples) >= 3
    assert sum(expected is not None for _, expected in examples) >= 2


def test_readme_python_examples_run_and_print_what_the_readme_shows(default_model_server):
    server, checkpoint = default_model_server
    namespace: dict = {"__name__": "readme"}
    for code, expected in readme_examples():
        code = code.replace(README_URL, server.grpc_url).replace(README_CHECKPOINT, str(checkpoint))
        printed = run_block(code, namespace)
        if expected is not None:
            assert same_output(printed, expected), f"README example printed:\n{printed}\nREADME shows:\n{expected}"
