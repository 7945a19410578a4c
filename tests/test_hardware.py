import pytest
import torch
from lightning.fabric.utilities.throughput import get_available_flops

from lightning_critrm.hardware import peak_flops


def test_a_cpu_has_no_peak():
    assert peak_flops("cpu", "bf16-mixed") is None


@pytest.mark.parametrize("precision, dtype", [("bf16-mixed", torch.bfloat16), ("16-mixed", torch.float16)])
def test_an_h200_is_measured_against_the_dense_peak_of_its_h100_die(monkeypatch, precision, dtype):
    # An H200 SXM computes as an H100 SXM (same GH100 die and clocks, more memory); Lightning lists
    # the H200 with 2:4 sparsity, twice the dense figure, and does not know the plain name.
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    h100 = get_available_flops(torch.device("cuda"), dtype)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    assert peak_flops("cuda", precision) == h100
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200 SXM1")
    assert peak_flops("cuda",
            precision) == pytest.approx(get_available_flops(torch.device("cuda"), dtype) / 2, rel=0.02)


def test_other_gpus_take_lightnings_table(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA A100-SXM4-80GB")
    assert peak_flops("cuda:0", "bf16-mixed") == get_available_flops(torch.device("cuda"), torch.bfloat16)
