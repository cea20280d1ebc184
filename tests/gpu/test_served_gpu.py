"""The served model on a ``KIND_GPU`` instance: it runs on the GPU, and its fp32 logits are CPU transformers'.

Skipped without CUDA. The server is the real ``tritonserver`` (build/launch.py): the nvidia-pytriton
wheel's, or on the GPU machine the bundle's that benchmarks/gpu_check.py unpacks (``TRITONSERVER_HOME``).
The checkpoint is ``GPU_CHECK_CHECKPOINT`` when set — gpu_check.py sets it to a full-size random-weight
checkpoint, whose 12 heads of 64 take the GPU's fused attention kernels — else the tiny test checkpoint.

Served GPU instances let fp32 matrix products use TF32 (token_model/device.py: logits then differ from
fp32 by ~1e-3 of their scale). This server runs with ``NVIDIA_TF32_OVERRIDE=0``, which makes cuBLAS and
cuDNN ignore that permission, so its fp32 is fp32 and 1e-4 against CPU transformers is a tight bound.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from distilbert_serving.corpus import english_texts
from distilbert_serving.export import ServingConfig, write_model
from distilbert_serving.launch import LocalServer, options_on_free_ports
from helpers import infer_ids, reference_logits, token_ids

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="no CUDA device: a KIND_GPU instance needs one (benchmarks/gpu_check.py runs this on a GPU machine)",
)

MODEL = "served_gpu_fp32"
CHECKPOINT_ENV = "GPU_CHECK_CHECKPOINT"
TOLERANCE = 1e-4
# Read by NVIDIA's libraries (cuBLAS, cuDNN) at start: "0" turns TF32 off whatever the framework asks for.
NO_TF32 = ("NVIDIA_TF32_OVERRIDE", "0")
TF32_HINT = "a difference of ~1e-3 of the logits' scale is TF32's: was NVIDIA_TF32_OVERRIDE=0 honoured?"


@pytest.fixture(scope="module")
def checkpoint(request) -> Path:
    if os.environ.get(CHECKPOINT_ENV):
        return Path(os.environ[CHECKPOINT_ENV])
    return request.getfixturevalue("tiny_checkpoints")["single_label_classification"]


@pytest.fixture(scope="module")
def gpu_server(checkpoint, tmp_path_factory):
    repository = tmp_path_factory.mktemp("gpu_repository")
    # 64 rows: the padded-batch test sends all of ``ids`` in one request.
    config = ServingConfig(model_name=MODEL, instance_kind="gpu", precision="fp32", max_batch_size=64)
    write_model(checkpoint, repository, config)
    log = tmp_path_factory.mktemp("gpu_server") / "tritonserver.log"
    server = LocalServer(options_on_free_ports(repository, exit_timeout_s=10), log_path=log)
    with pytest.MonkeyPatch.context() as patch:  # the server takes this process's environment
        patch.setenv(*NO_TF32)
        server.start(timeout_s=300)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(gpu_server):
    import tritonclient.grpc as grpcclient

    with grpcclient.InferenceServerClient(gpu_server.grpc_url) as client:
        yield client


@pytest.fixture(scope="module")
def ids(checkpoint) -> list[list[int]]:
    return token_ids(checkpoint, english_texts(48))


def test_gpu_instance_is_placed_on_cuda_when_kind_gpu(gpu_server, client):
    from tritonclient.grpc import model_config_pb2 as mc

    groups = client.get_model_config(MODEL).config.instance_group
    assert [group.kind for group in groups] == [mc.ModelInstanceGroup.KIND_GPU]
    # model.py logs where each instance's engine lives: "<model>: ..., fp32 on cuda:0, ...".
    placements = re.findall(rf"{MODEL}: [^\n]*? on (cuda:\d+|cpu)\b", gpu_server.log_path.read_text(errors="replace"))
    assert placements and all(device.startswith("cuda:") for device in placements), placements
    assert gpu_server.stubs_healthy()


def test_gpu_instance_logits_match_cpu_transformers_within_1e4_when_fp32_one_text_per_request(client, checkpoint, ids):
    expected = reference_logits(checkpoint, ids)
    served = np.concatenate([infer_ids(client, MODEL, np.array([row])).as_numpy("logits") for row in ids])
    assert np.abs(served - expected).max() <= TOLERANCE, TF32_HINT


def test_gpu_instance_logits_match_cpu_transformers_within_1e4_when_fp32_padded_batch(client, checkpoint, ids):
    longest = max(map(len, ids))
    padded = np.zeros((len(ids), longest), dtype=np.int64)
    mask = np.zeros_like(padded)
    for r, row in enumerate(ids):
        padded[r, : len(row)], mask[r, : len(row)] = row, 1
    served = infer_ids(client, MODEL, padded, mask).as_numpy("logits")
    assert np.abs(served - reference_logits(checkpoint, ids)).max() <= TOLERANCE, TF32_HINT
