"""What the CPU can compute fast: its model name, its SIMD flags and the limits a user put on them. A
time-budgeted figure depends on these (the same step runs about 2x slower without AVX-512 and bf16), so
every figure is printed with them."""
from __future__ import annotations

import os
import platform
import re
from functools import lru_cache
from pathlib import Path

import torch

# The flags that decide the speed of torch's CPU kernels, in the order they are printed
SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16")
# oneDNN instruction sets (ONEDNN_MAX_CPU_ISA) that include bf16 dot products
ISA_WITH_BF16 = {"AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX10_1_512", "AVX512_CORE_AMX", "AVX10_1_512_AMX",
                 "AVX512_CORE_AMX_FP16", "AVX10_1_512_AMX_FP16", "ALL", "DEFAULT"}


@lru_cache(maxsize=1)
def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux
        return ""


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what platform knows."""
    match = re.search(r"^model name\s*:\s*(.+)$", _cpuinfo(), re.M)
    return match.group(1).strip() if match else (platform.processor() or platform.machine())


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """Read once: evaluation asks for the precision (and so for these) at every batch."""
    match = re.search(r"^flags\s*:\s*(.+)$", _cpuinfo(), re.M)
    return frozenset(match.group(1).split()) if match else frozenset()


def isa_limit() -> str | None:
    """ONEDNN_MAX_CPU_ISA as the user set it (upper case), or None."""
    value = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    return value.strip().upper() if value else None


def has_native_bf16() -> bool:
    """bf16 dot products in hardware (avx512_bf16 or amx_bf16) that oneDNN is allowed to use."""
    if not torch.backends.mkldnn.is_available() or not cpu_flags() & {"avx512_bf16", "amx_bf16"}:
        return False
    limit = isa_limit()
    return limit is None or limit in ISA_WITH_BF16


# oneDNN instruction sets (ONEDNN_MAX_CPU_ISA) below AVX-512
ISA_BELOW_AVX512 = {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2"}


def has_avx512() -> bool:
    """AVX-512 (the avx512f flag) that oneDNN is allowed to use."""
    if not torch.backends.mkldnn.is_available() or "avx512f" not in cpu_flags():
        return False
    return isa_limit() not in ISA_BELOW_AVX512


@lru_cache(maxsize=1)
def cpu_vendor() -> str:
    """The vendor_id of /proc/cpuinfo ("GenuineIntel", "AuthenticAMD", ...), "" where it is not read. Read
    once: every float32 linear layer on the CPU asks for it."""
    match = re.search(r"^vendor_id\s*:\s*(.+)$", _cpuinfo(), re.M)
    return match.group(1).strip() if match else ""


def onednn_matmul_is_faster() -> bool:
    """Whether oneDNN multiplies float32 matrices faster than torch's BLAS on this CPU: where that BLAS is
    MKL, which takes its fast kernels on Intel CPUs only. On this project's AMD EPYC oneDNN's float32
    linear runs 2.0-2.7x faster than MKL's for the R-CNN box head's shapes (1.15-1.3x with oneDNN limited to
    AVX2, MKL being as slow either way)."""
    return (torch.backends.mkl.is_available() and torch.backends.mkldnn.is_available()
            and cpu_vendor() not in ("GenuineIntel", ""))


def describe_cpu() -> str:
    """One line: model, speed flags, torch's kernel level, and any ISA limit, e.g. "AMD EPYC 9R14 (avx2 fma
    avx512f avx512_vnni avx512_bf16; torch AVX512)"."""
    flags = [f for f in SPEED_FLAGS if f in cpu_flags()]
    limits = [f"torch {torch.backends.cpu.get_cpu_capability()}"]
    if isa_limit():
        limits.append(f"ONEDNN_MAX_CPU_ISA={isa_limit()}")
    return f"{cpu_model()} ({' '.join(flags) or 'no SIMD flags read'}; {', '.join(limits)})"
