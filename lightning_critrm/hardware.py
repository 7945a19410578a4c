"""What this machine computes fast: the dtype that ``auto`` means here.

CPUs without native bf16 (AVX2 only, or AVX-512 without its BF16 extension) emulate bf16 matmuls:
measured 35x slower than fp32 on a 2-core AVX2 machine. bf16 is only chosen where the hardware has
it: AVX-512 BF16 or AMX on x86, CUDA devices that support it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Optional


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


def peak_flops(device, precision: str) -> Optional[float]:
    """Dense peak FLOP/s of one CUDA device at a Lightning ``precision`` (None for CPUs, which have
    no such figure, and for GPUs Lightning does not know). H200s are looked up here: Lightning does
    not recognise the plain name "NVIDIA H200" and lists them with 2:4 sparsity, which would halve
    the MFU; MFU is conventionally against the dense peak."""
    import torch

    if torch.device(device).type != "cuda":
        return None
    dtype = (torch.bfloat16 if "bf16" in precision
             else torch.float16 if precision.startswith("16") else torch.float32)
    name = torch.cuda.get_device_name(device).lower()
    if "h200" in name:
        bf16, tf32, fp32 = (835.5e12, 417.8e12, 60.0e12) if "nvl" in name else (989.4e12, 494.7e12, 66.9e12)
        if dtype != torch.float32:
            return bf16  # fp16 peaks the same
        # TF32 tensor cores unless matmuls are asked for full fp32 precision.
        return tf32 if torch.get_float32_matmul_precision() != "highest" else fp32
    from lightning.fabric.utilities.throughput import get_available_flops

    return get_available_flops(torch.device(device), dtype)
