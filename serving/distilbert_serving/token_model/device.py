"""The device an instance computes on: what it can run, and the process-wide torch defaults for it.

Triton runs each model instance in its own process, so process-wide settings made here
(the current CUDA device, TF32 for fp32 matrix products) belong to that one instance.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from .precision import Hardware, UnsupportedPrecision, cpu_flags, resolve

__all__ = ["UnsupportedPrecision", "detect", "instance_device", "instance_threads", "prepare_device"]

# Threads of a GPU instance: the host only queues kernels and copies, so more threads would
# only take cores from the other instances on the node.
GPU_INSTANCE_THREADS = 2


class UnsupportedNumpy(RuntimeError):
    """The instance's process has a numpy that the Python backend's stub cannot exchange tensors with."""


# The server version whose Python-backend stub first exchanges tensors correctly with numpy 2 (the 24.11
# container); the NGC containers say theirs in TRITON_SERVER_VERSION.
NUMPY2_SERVER = (2, 52)
SERVER_VERSION_ENV = "TRITON_SERVER_VERSION"


def check_stub_numpy(version: str = np.__version__, server: str | None = None) -> None:
    """Refuse numpy 2 in a served instance's process when the server's Python-backend stub was built for
    numpy 1.x (Triton before 2.52, and any server that does not say its version): such a stub misreads
    the input tensors and sends empty outputs, with no error. ``server``: default ``$TRITON_SERVER_VERSION``.
    """
    server = os.environ.get(SERVER_VERSION_ENV) if server is None else server
    if int(version.split(".")[0]) < 2:
        return
    try:
        if tuple(int(part) for part in server.split(".")[:2]) >= NUMPY2_SERVER:
            return
    except (AttributeError, ValueError):
        pass  # unknown: assume the older stub
    raise UnsupportedNumpy(
        f"numpy {version} in the model's Python, and a Triton server older than 2.52 ({server or 'version unknown'}) "
        "whose backend stub misreads tensors under numpy 2 (wrong answers, empty outputs): install numpy<2 "
        f"(pyproject.toml pins 1.26.4), or run Triton 2.52 (24.11) or newer with {SERVER_VERSION_ENV} set"
    )


def prepare_device(device: torch.device, precision: str, tf32: bool = True) -> None:
    """Check that ``device`` can run ``precision``, and make it this process's device.

    On a GPU, ``tf32`` lets fp32 matrix products run on tensor cores (TF32: a 10-bit
    mantissa for the products, fp32 sums): several times faster, with logits off by
    about 1e-3 relative instead of 1e-6 — turn it off to compare with fp32 references.
    """
    if device.type != "cuda":
        return
    torch.cuda.set_device(device)
    resolve(precision, detect(device))  # UnsupportedPrecision: bf16 on a GPU older than Ampere
    torch.backends.cuda.matmul.allow_tf32 = tf32
    # cuDNN's attention builds an execution plan for each new (batch, length) shape; a packed
    # forward sees new shapes all the time (every chunk's length is its texts'), so the
    # first text of each length pays for its plan. Flash and memory-efficient SDPA have no per-shape
    # setup. benchmarks/gpu_ceiling.py measures single texts with and without it ("sdpa_cudnn").
    torch.backends.cuda.enable_cudnn_sdp(False)


def detect(device: torch.device) -> Hardware:
    """The hardware of ``device``, as ``precision.resolve`` reads it."""
    if device.type == "cuda":
        capability = tuple(torch.cuda.get_device_capability(device))
        return Hardware("gpu", gpu_capability=capability, gpu_name=torch.cuda.get_device_name(device))
    return Hardware("cpu", cpu_flags=cpu_flags())


def instance_threads(device: torch.device, configured: int, cpu_instances: int) -> int:
    """torch threads for an instance on ``device``: ``configured`` if set (> 0), else a share of the cores.

    A CPU instance gets the cores divided among the CPU instances; a GPU instance gets
    ``GPU_INSTANCE_THREADS`` (its work is on the GPU, and a GPU node's cores serve many instances).
    """
    if configured > 0:
        return configured
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if device.type == "cuda":
        return min(GPU_INSTANCE_THREADS, cores)
    return max(1, cores // max(1, cpu_instances))


def instance_device(instance_kind: str, device_id: int) -> torch.device:
    """The device of a Triton model instance: its GPU for a ``GPU`` instance, else the CPU."""
    if instance_kind == "GPU":
        if not torch.cuda.is_available():
            raise RuntimeError("instance kind is GPU but torch sees no CUDA device")
        return torch.device(f"cuda:{device_id}")
    return torch.device("cpu")
