"""``precision auto``: each instance's pick from the hardware it lands on, and the checks of explicit choices."""

from pathlib import Path

import pytest

from distilbert_serving.token_model.precision import (
    AUTO,
    PRECISIONS,
    Hardware,
    UnsupportedPrecision,
    auto_precision,
    cpu_flags,
    resolve,
)

AMX_CPU = Hardware("cpu", cpu_flags=frozenset({"avx512f", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile"}))
# avx512_bf16 without AMX: bf16 runs slower than fp32 there, so auto stays exact.
AVX512_BF16_CPU = Hardware("cpu", cpu_flags=frozenset({"avx2", "avx512f", "avx512_bf16", "avx512_vnni"}))
H100 = Hardware("gpu", gpu_capability=(9, 0), gpu_name="NVIDIA H100")
A100 = Hardware("gpu", gpu_capability=(8, 0), gpu_name="NVIDIA A100")
T4 = Hardware("gpu", gpu_capability=(7, 5), gpu_name="Tesla T4")


@pytest.mark.parametrize(
    ("hardware", "picked"),
    [
        (AMX_CPU, "bf16"),
        (AVX512_BF16_CPU, "fp32"),
        (Hardware("cpu"), "fp32"),
        (H100, "bf16"),
        (A100, "bf16"),
        (T4, "fp16"),
    ],
    ids=["amx-cpu", "avx512-bf16-cpu", "plain-cpu", "h100", "a100", "t4"],
)
def test_auto_picks_the_fastest_precision_the_hardware_runs_natively(hardware, picked):
    assert auto_precision(hardware) == picked
    assert resolve(AUTO, hardware) == PRECISIONS[picked]


def test_auto_never_picks_int8_whose_accuracy_depends_on_the_checkpoint():
    for hardware in (AMX_CPU, AVX512_BF16_CPU, Hardware("cpu"), H100, T4):
        assert resolve(AUTO, hardware).gemm is None


@pytest.mark.parametrize("hardware", [AMX_CPU, Hardware("cpu"), H100, T4], ids=["amx", "cpu", "h100", "t4"])
def test_an_explicit_fp32_is_kept_everywhere_and_is_the_exact_precision(hardware):
    precision = resolve("fp32", hardware)
    assert precision.name == "fp32" and precision.exact


def test_explicit_precisions_the_hardware_cannot_run_are_refused_with_the_fix():
    with pytest.raises(UnsupportedPrecision, match=r"compute capability 8.0 .* Tesla T4 is 7.5: use fp16 or fp32"):
        resolve("bf16", T4)
    with pytest.raises(UnsupportedPrecision, match="fp16 runs on gpu instances only; .* cpu instance"):
        resolve("fp16", AMX_CPU)
    with pytest.raises(UnsupportedPrecision, match="int8 runs on cpu instances only"):
        resolve("int8", H100)
    assert resolve("bf16", Hardware("cpu")).name == "bf16"  # asked for: served, if slower


def test_cpu_flags_are_read_from_cpuinfo_and_absent_without_it(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 amx_bf16 amx_tile\nbogomips\t: 1\n")
    assert auto_precision(Hardware("cpu", cpu_flags=cpu_flags(cpuinfo))) == "bf16"
    assert cpu_flags(tmp_path / "absent") == frozenset()
    assert isinstance(cpu_flags(Path("/proc/cpuinfo")), frozenset)
