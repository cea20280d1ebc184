"""The device an instance computes on: what it can run, and the process-wide torch defaults for it.

Triton runs each model instance in its own process, so process-wide settings made here
(the current CUDA device, TF32 for fp32 matrix products) belong to that one instance.
"""

from __future__ import annotations

import os

import torch

# Threads of a GPU instance: the host only queues kernels and copies, so more threads would
# only take cores from the other instances on the node.
GPU_INSTANCE_THREADS = 2


class UnsupportedPrecision(ValueError):
    """The device cannot compute in the requested precision natively."""


def prepare_device(device: torch.device, precision: str, tf32: bool = True) -> None:
    """Check that ``device`` can run ``precision``, and make it this process's device.

    On a GPU, ``tf32`` lets fp32 matrix products run on tensor cores (TF32: a 10-bit
    mantissa for the products, fp32 sums): several times faster, with logits off by
    about 1e-3 relative instead of 1e-6 — turn it off to compare with fp32 references.
    """
    if device.type != "cuda":
        return
    torch.cuda.set_device(device)
    capability = torch.cuda.get_device_capability(device)
    if precision == "bf16" and capability < (8, 0):
        raise UnsupportedPrecision(
            f"precision bf16 needs a GPU of compute capability 8.0 or newer (Ampere); "
            f"{torch.cuda.get_device_name(device)} is {capability[0]}.{capability[1]}: use fp16 or fp32"
        )
    torch.backends.cuda.matmul.allow_tf32 = tf32


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
