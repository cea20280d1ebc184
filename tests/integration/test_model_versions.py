"""A new checkpoint goes into a running server as a new version, under load, with no failed call.

The server holds an admin key, so models load while it serves (``--model-control-mode=explicit``,
``server_flags.model_control_flags``). Version 1 serves steady callers; export writes version 2 (other
weights, the same labels and tokenizer) beside it and the admin loads it: callers that follow the newest
move to it, callers pinned to version 1 stay there, the text model follows the token model it calls, and
no call fails. A version that disagrees (other labels, another tokenizer, broken weights) is refused at
load with its reason while the version serving goes on.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from distilbert_client import Classifier
from distilbert_serving.corpus import english_texts
from distilbert_serving.export import CHECKPOINT_FOLDER, ServingConfig, TextModelConfig, write_text_model
from distilbert_serving.knobs import ConfigError
from distilbert_serving.launch import LocalServer, options_on_free_ports
from distilbert_serving.rollout import Callers, answers, phases, report, tiny_repository
from distilbert_serving.server_flags import GRPC_ADMIN_KEY_HEADER, generate_admin_key

SINGLE = "single_label_classification"
MODEL, TEXT_MODEL = "distilbert_classifier", "distilbert_text"


def variant(checkpoint: Path, out: Path, *, bias: float = 0.0, labels=None, swap_tokens: bool = False) -> Path:
    """A copy of ``checkpoint``: its classifier bias shifted, its labels renamed, or two tokens of its vocabulary swapped."""
    from transformers import AutoModelForSequenceClassification

    shutil.copytree(checkpoint, out)
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint)
    model.classifier.bias.data += bias * np.arange(1, model.config.num_labels + 1, dtype=np.float32)
    if labels:
        model.config.id2label = dict(enumerate(labels))
        model.config.label2id = {label: i for i, label in enumerate(labels)}
    model.save_pretrained(out, safe_serialization=True)
    if swap_tokens:
        spec = json.loads((out / "tokenizer.json").read_text())
        vocab = spec["model"]["vocab"]
        vocab["good"], vocab["bad"] = vocab["bad"], vocab["good"]
        (out / "tokenizer.json").write_text(json.dumps(spec))
    return out


@pytest.fixture(scope="module")
def checkpoints(tiny_checkpoints, tmp_path_factory) -> dict[str, Path]:
    root, original = tmp_path_factory.mktemp("versions"), tiny_checkpoints[SINGLE]
    broken = variant(original, root / "broken")
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    return {
        "original": original,
        "retrained": variant(original, root / "retrained", bias=0.5),
        "other_labels": variant(original, root / "other_labels", labels=["bad", "so-so", "good"]),
        "other_tokenizer": variant(original, root / "other_tokenizer", swap_tokens=True),
        "broken": broken,
    }


@pytest.fixture(scope="module")
def server(checkpoints, tmp_path_factory):
    repository = tiny_repository(checkpoints["original"], MODEL, repository=tmp_path_factory.mktemp("versions_repo"))
    text = TextModelConfig(instance_count=1, max_queue_size=0, queue_timeout_us=0)
    write_text_model(checkpoints["original"], repository, ServingConfig(model_name=MODEL), text)
    options = options_on_free_ports(repository, exit_timeout_s=5, admin_key=generate_admin_key())
    with LocalServer(options, log_path=tmp_path_factory.mktemp("versions_server") / "tritonserver.log") as local:
        yield local


@pytest.fixture
def admin(server):
    headers = {GRPC_ADMIN_KEY_HEADER: server.options.admin_key}
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        yield lambda: client.load_model(MODEL, headers=headers)


def text_model_logits(server: LocalServer, text: str) -> np.ndarray:
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        request = grpcclient.InferInput("text", [1, 1], "BYTES")
        request.set_data_from_numpy(np.array([[text.encode()]], dtype=object))
        return client.infer(TEXT_MODEL, [request]).as_numpy("logits")[0]


def test_new_version_takes_the_traffic_under_load_with_no_failed_call_while_pinned_callers_stay(
    server, admin, checkpoints
):
    texts = english_texts(30, seed=5)
    with (
        Classifier(server.grpc_url, checkpoints["original"], timeout_s=30) as newest,
        Classifier(server.grpc_url, checkpoints["original"], timeout_s=30, model_version="1") as pinned,
    ):
        expected = {"1": answers(newest, texts)}
        with Callers(newest, texts, count=3, pause_s=0.005) as following, Callers(pinned, texts, count=1) as staying:
            begin = time.monotonic()
            time.sleep(2)
            rollout = time.monotonic()
            tiny_repository(
                checkpoints["retrained"], MODEL, version=2, repository=Path(server.options.model_repository)
            )
            admin()
            after = time.monotonic()
            time.sleep(2)
        end = time.monotonic()
        with Classifier(server.grpc_url, checkpoints["original"], model_version="2") as second:
            expected["2"] = answers(second, texts)

    figures = phases(following.calls, (begin, rollout, after, end), expected)
    print(report(figures, [], following.errors), f"\nversion 2 loaded in {after - rollout:.2f} s")
    assert [(p.failed, p.wrong) for p in figures] == [(0, 0)] * 3, report(figures, [], following.errors)
    assert expected["2"][texts[0]].logits != expected["1"][texts[0]].logits, "version 2 answers otherwise"
    # Every call made once the load returned was answered by version 2; the pinned caller's, by version 1.
    assert {c.answer.model_version for c in following.calls if c.began > after} == {"2"}
    assert {c.answer.model_version for c in staying.calls if c.answer} == {"1"} and not staying.errors
    # The text model calls the newest token model: version 2's answer.
    np.testing.assert_allclose(text_model_logits(server, texts[0]), expected["2"][texts[0]].logits, atol=1e-4)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("other_labels", "labels: config.pbtxt says"),
        ("other_tokenizer", "tokenizer differs"),
        ("broken", "SafetensorError"),
    ],
)
def test_version_that_disagrees_is_refused_at_load_with_its_reason_and_the_serving_version_serves_on(
    server, admin, checkpoints, bad, reason
):
    model_dir = Path(server.options.model_repository) / MODEL
    serving = max(int(d.name) for d in model_dir.iterdir() if d.name.isdigit())
    # Copied in by hand, as export refuses the first two (test_export_refuses_...): the load must refuse it too.
    shutil.copytree(checkpoints[bad], model_dir / str(serving + 1) / CHECKPOINT_FOLDER)
    texts = english_texts(10, seed=6)
    try:
        with Classifier(server.grpc_url, checkpoints["original"], timeout_s=30) as classifier:
            before = answers(classifier, texts)
            with (
                Callers(classifier, texts, count=2, pause_s=0.005) as callers,
                pytest.raises(InferenceServerException, match=reason),
            ):
                admin()
    finally:
        shutil.rmtree(model_dir / str(serving + 1))

    assert callers.calls and not callers.errors, callers.errors
    assert {c.answer.model_version for c in callers.calls} == {before[texts[0]].model_version}
    assert all(np.allclose(c.answer.logits, before[c.text].logits, atol=1e-4) for c in callers.calls)


@pytest.mark.parametrize(("bad", "fact"), [("other_labels", "labels"), ("other_tokenizer", "tokenizer_sha256")])
def test_export_refuses_a_version_that_disagrees_with_the_versions_beside_it(checkpoints, tmp_path, bad, fact):
    tiny_repository(checkpoints["original"], MODEL, repository=tmp_path)
    with pytest.raises(ConfigError, match=f"version 2 of {MODEL} would disagree .*{fact}"):
        tiny_repository(checkpoints[bad], MODEL, version=2, repository=tmp_path)
    assert not (tmp_path / MODEL / "2").exists()
    tiny_repository(checkpoints["retrained"], MODEL, version=2, repository=tmp_path)  # same facts: written
    assert (tmp_path / MODEL / "2" / CHECKPOINT_FOLDER / "model.safetensors").is_file()
