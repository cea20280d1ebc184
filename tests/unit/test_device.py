"""Device preparation: what a GPU instance refuses at load, and how many threads an instance takes."""

import pytest
import torch

from distilbert_serving.token_model.device import (
    GPU_INSTANCE_THREADS,
    UnsupportedNumpy,
    UnsupportedPrecision,
    check_stub_numpy,
    instance_threads,
    prepare_device,
)


@pytest.fixture
def fake_gpu(monkeypatch):
    """A CUDA device of a chosen compute capability, without a GPU: what prepare_device asks torch."""
    chosen = []
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "Tesla T4")
    tf32 = torch.backends.cuda.matmul.allow_tf32  # process-wide settings: restored below
    cudnn_attention = torch.backends.cuda.cudnn_sdp_enabled()

    def with_capability(capability):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device: capability)
        return chosen

    yield with_capability
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cuda.enable_cudnn_sdp(cudnn_attention)


def test_bf16_on_a_gpu_older_than_ampere_is_refused_with_what_to_use_instead(fake_gpu):
    fake_gpu((7, 5))
    with pytest.raises(UnsupportedPrecision, match=r"compute capability 8.0 .* Tesla T4 is 7.5: use fp16 or fp32"):
        prepare_device(torch.device("cuda:1"), "bf16")


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_older_gpus_still_serve_fp32_and_fp16(fake_gpu, precision):
    chosen = fake_gpu((7, 5))
    prepare_device(torch.device("cuda:1"), precision)
    assert chosen == [torch.device("cuda:1")]


@pytest.mark.parametrize("tf32", [True, False])
def test_tf32_for_fp32_matrix_products_follows_the_parameter(fake_gpu, tf32):
    fake_gpu((9, 0))
    prepare_device(torch.device("cuda:0"), "fp32", tf32=tf32)
    assert torch.backends.cuda.matmul.allow_tf32 is tf32


def test_the_cpu_needs_no_preparation():
    prepare_device(torch.device("cpu"), "bf16")


def test_a_gpu_instance_takes_a_few_threads_not_the_whole_node():
    assert instance_threads(torch.device("cuda:0"), configured=0, cpu_instances=4) <= GPU_INSTANCE_THREADS


def test_cpu_instances_share_the_cores_and_a_configured_count_wins():
    assert instance_threads(torch.device("cpu"), configured=0, cpu_instances=1) >= 1
    assert instance_threads(torch.device("cpu"), configured=3, cpu_instances=1) == 3
    assert instance_threads(torch.device("cuda:0"), configured=5, cpu_instances=1) == 5


def test_numpy_2_is_refused_in_a_served_instance_since_the_stub_would_answer_wrongly():
    with pytest.raises(UnsupportedNumpy, match=r"numpy 2.5.2 .* install numpy<2"):
        check_stub_numpy("2.5.2")
    check_stub_numpy("1.26.4")
    check_stub_numpy()  # the numpy installed here: the pinned 1.x


def test_a_gpu_instance_turns_cudnn_attention_off_since_it_plans_every_new_shape(fake_gpu):
    fake_gpu((9, 0))
    torch.backends.cuda.enable_cudnn_sdp(True)
    prepare_device(torch.device("cuda:0"), "bf16")
    assert not torch.backends.cuda.cudnn_sdp_enabled()


@pytest.mark.parametrize(
    ("server", "refused"), [(None, True), ("", True), ("2.51.0", True), ("2.52.0", False), ("2.62.0", False)]
)
def test_numpy_2_is_refused_only_where_the_servers_stub_predates_it(server, refused, monkeypatch):
    monkeypatch.delenv("TRITON_SERVER_VERSION", raising=False)
    if refused:
        with pytest.raises(UnsupportedNumpy, match="older than 2.52"):
            check_stub_numpy("2.3.0", server)
    else:
        check_stub_numpy("2.3.0", server)


def test_the_server_version_is_read_from_the_environment_the_ngc_container_sets(monkeypatch):
    monkeypatch.setenv("TRITON_SERVER_VERSION", "2.62.0")
    check_stub_numpy("2.3.0")
