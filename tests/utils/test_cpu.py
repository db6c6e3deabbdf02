"""The CPU's description printed with every figure, and when bf16 counts as native."""
import pytest
import torch

from detseg.engine import precision
from detseg.utils import cpu

EPYC = "model name\t: AMD EPYC 9R14\nflags\t\t: fpu sse2 avx2 fma avx512f avx512_vnni avx512_bf16\n"
REAL_NATIVE_BF16 = precision.cpu_has_native_bf16  # before conftest pins every test to fp32
REAL_AVX512 = precision.cpu_has_avx512  # ... in NCHW
OLDER = "model name\t: AMD EPYC 7R32\nflags\t\t: fpu sse2 avx2 fma\n"


@pytest.fixture
def cpuinfo(monkeypatch):
    def use(text: str):
        monkeypatch.setattr(cpu, "_cpuinfo", lambda: text)
        cpu.cpu_flags.cache_clear()
        cpu.cpu_vendor.cache_clear()
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", REAL_NATIVE_BF16)
    monkeypatch.setattr(precision, "cpu_has_avx512", REAL_AVX512)
    yield use
    cpu.cpu_flags.cache_clear()  # the next test reads this machine's flags again
    cpu.cpu_vendor.cache_clear()


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="bf16 on the CPU goes through oneDNN")
def test_bf16_is_native_only_with_the_flag_and_no_isa_limit_below_it(cpuinfo, monkeypatch):
    cpuinfo(EPYC)
    assert cpu.has_native_bf16() and precision.amp_dtype("auto", "cpu") == torch.bfloat16
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")  # oneDNN may not use the bf16 instructions
    assert not cpu.has_native_bf16() and precision.amp_dtype("auto", "cpu") is None
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
    assert cpu.has_native_bf16()
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    cpuinfo(OLDER)
    assert not cpu.has_native_bf16() and precision.amp_dtype("auto", "cpu") is None


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="channels_last pays through oneDNN")
def test_fp32_takes_channels_last_only_with_avx512_that_onednn_may_use(cpuinfo, monkeypatch):
    cpuinfo(EPYC)
    assert cpu.has_avx512() and precision.use_channels_last("auto", "cpu", False)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")  # AVX-512 without bf16: still channels_last
    assert cpu.has_avx512() and not cpu.has_native_bf16() and precision.use_channels_last("auto", "cpu", "auto")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")  # training is slower in channels_last there
    assert not cpu.has_avx512() and not precision.use_channels_last("auto", "cpu", "auto")
    assert precision.use_channels_last(True, "cpu", False)  # asked for, given
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    cpuinfo(OLDER)
    assert not cpu.has_avx512() and not precision.use_channels_last("auto", "cpu", "auto")
    assert precision.use_channels_last("auto", "cpu", "bf16")  # bf16 asked for: channels_last whatever the CPU


def test_description_names_model_speed_flags_kernel_level_and_limit(cpuinfo, monkeypatch):
    cpuinfo(EPYC)
    capability = torch.backends.cpu.get_cpu_capability()
    assert cpu.describe_cpu() == f"AMD EPYC 9R14 (avx2 fma avx512f avx512_vnni avx512_bf16; torch {capability})"
    cpuinfo(OLDER)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")
    assert cpu.describe_cpu() == f"AMD EPYC 7R32 (avx2 fma; torch {capability}, ONEDNN_MAX_CPU_ISA=AVX2)"
    cpuinfo("")
    assert cpu.describe_cpu().endswith(f"(no SIMD flags read; torch {capability}, ONEDNN_MAX_CPU_ISA=AVX2)")



@pytest.mark.skipif(not (torch.backends.mkldnn.is_available() and torch.backends.mkl.is_available()),
                    reason="the comparison is between MKL's sgemm and oneDNN")
def test_onednn_multiplies_faster_only_off_intel(cpuinfo, monkeypatch):
    cpuinfo("vendor_id\t: AuthenticAMD\n" + EPYC)
    assert cpu.cpu_vendor() == "AuthenticAMD" and cpu.onednn_matmul_is_faster()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")  # still faster than MKL there (1.15-1.3x)
    assert cpu.onednn_matmul_is_faster()
    cpuinfo("vendor_id\t: GenuineIntel\n" + EPYC.replace("AMD EPYC 9R14", "Intel Xeon"))  # MKL's own CPUs
    assert not cpu.onednn_matmul_is_faster()
    cpuinfo(EPYC)  # no vendor read: assume nothing
    assert cpu.cpu_vendor() == "" and not cpu.onednn_matmul_is_faster()
    monkeypatch.setattr(torch.backends.mkl, "is_available", lambda: False)  # another BLAS: not measured
    cpuinfo("vendor_id\t: AuthenticAMD\n" + EPYC)
    assert not cpu.onednn_matmul_is_faster()
