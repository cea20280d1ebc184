"""Precision: the one table of what each precision computes in and where it runs, and ``auto``'s rule.

The knob ``precision`` (``settings.py``) names a row of ``PRECISIONS`` or ``auto``. Export checks the
row's instance kinds; at load an instance resolves ``auto`` from the hardware it landed on
(``detect``), checks the row against that hardware, and the engine reads the row's dtype and
GEMM path. One exported repository thus serves in bf16 on a GPU or an AMX CPU and in fp32 on a CPU
without AMX, where bf16 runs slower than fp32 (docs/BENCHMARKS.md, "Why the defaults are what they are").

``auto`` picks:
    GPU, compute capability 8.0 or newer   bf16: tensor cores, fp32's exponent range
    older GPU                              fp16: tensor cores; bf16 has no native support there
    CPU with AMX (``amx_bf16``)            bf16: AMX tiles through oneDNN
    any other CPU                          fp32: exact (max |Δlogit| ≤ 1e-4 against transformers fp32)
int8 is never picked: its accuracy depends on the checkpoint (``make precision-report``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

AUTO = "auto"


@dataclass(frozen=True)
class Precision:
    """One precision: the torch dtype of weights and activations, the GEMM path it forces (None: the
    fastest of this device, timed at load), the instance kinds that run it, and on a GPU the oldest
    compute capability that runs it natively."""

    name: str
    dtype: str
    gemm: str | None = None
    kinds: tuple[str, ...] = ("cpu", "gpu")
    min_gpu_capability: tuple[int, int] = (0, 0)

    @property
    def exact(self) -> bool:
        """Answers within 1e-4 of transformers fp32: what the correctness tests compare."""
        return self.dtype == "float32" and self.gemm is None


PRECISIONS = {
    p.name: p
    for p in (
        Precision("fp32", "float32"),
        Precision("bf16", "bfloat16", min_gpu_capability=(8, 0)),
        Precision("fp16", "float16", kinds=("gpu",)),
        # The encoder's linear layers in int8, activations quantized per token (gemm.py); the rest fp32.
        Precision("int8", "float32", gemm="int8", kinds=("cpu",)),
    )
}
CHOICES = (AUTO, *PRECISIONS)


class UnsupportedPrecision(ValueError):
    """The instance's hardware cannot compute in the requested precision natively."""


@dataclass(frozen=True)
class Hardware:
    """What an instance landed on: ``kind`` cpu or gpu, the GPU's compute capability, the CPU's flags."""

    kind: str
    gpu_capability: tuple[int, int] | None = None
    gpu_name: str = ""
    cpu_flags: frozenset[str] = frozenset()


def auto_precision(hardware: Hardware) -> str:
    """The precision ``auto`` picks on ``hardware`` (see the module docstring)."""
    if hardware.kind == "gpu":
        return "bf16" if (hardware.gpu_capability or (0, 0)) >= PRECISIONS["bf16"].min_gpu_capability else "fp16"
    return "bf16" if "amx_bf16" in hardware.cpu_flags else "fp32"


def resolve(requested: str, hardware: Hardware) -> Precision:
    """The precision an instance on ``hardware`` computes in for the knob value ``requested``, or
    ``UnsupportedPrecision`` naming the fix."""
    precision = PRECISIONS[auto_precision(hardware) if requested == AUTO else requested]
    if hardware.kind not in precision.kinds:
        raise UnsupportedPrecision(
            f"precision {precision.name} runs on {' and '.join(precision.kinds)} instances only; "
            f"this instance is a {hardware.kind} instance: use {AUTO} or fp32"
        )
    capability = hardware.gpu_capability
    if hardware.kind == "gpu" and capability is not None and capability < precision.min_gpu_capability:
        need = ".".join(map(str, precision.min_gpu_capability))
        raise UnsupportedPrecision(
            f"precision {precision.name} needs a GPU of compute capability {need} or newer; "
            f"{hardware.gpu_name or 'this GPU'} is {capability[0]}.{capability[1]}: use fp16 or fp32 (or {AUTO})"
        )
    return precision


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags (Linux ``/proc/cpuinfo``); empty where that file is not."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()
