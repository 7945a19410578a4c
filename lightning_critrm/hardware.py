"""What this machine computes fast: the dtype that ``auto`` means here.

CPUs without native bf16 (AVX2 only, or AVX-512 without its BF16 extension) emulate bf16 matmuls:
measured 35x slower than fp32 on a 2-core AVX2 machine. bf16 is only chosen where the hardware has
it: AVX-512 BF16 or AMX on x86, CUDA devices that support it.
"""

from __future__ import annotations

import functools
from pathlib import Path


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags Linux reports (empty where /proc/cpuinfo is absent)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    line = next((line for line in text.splitlines() if line.startswith(("flags", "Features"))), "")
    return frozenset(line.partition(":")[2].split())


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX-512 BF16 or AMX; ``bf16`` on Arm)."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16", "bf16"})


def fastest_dtype(device: str = "cpu") -> str:
    """``bfloat16`` where it is native on ``device`` (``cpu`` or ``cuda``), else the exact and
    fast choice there: ``float32`` on CPUs, ``float16`` on GPUs without bf16."""
    if device == "cuda":
        import torch

        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "bfloat16" if cpu_has_native_bf16() else "float32"


def local_device() -> str:
    """Where a local model runs: ``cuda`` when a GPU is visible, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
