import math

import torch

from lightning_critrm.model.schedules import WarmupCosineLR


def test_warmup_then_cosine_to_floor():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = WarmupCosineLR(opt, total_steps=10, warmup_steps=2, min_lr_ratio=0.1)
    f = sched.factor
    assert math.isclose(f(0), 1 / 3) and math.isclose(f(1), 2 / 3) and math.isclose(f(2), 1.0)
    assert math.isclose(f(6), 0.1 + 0.9 * 0.5)  # halfway through the cosine
    assert math.isclose(f(10), 0.1) and math.isclose(f(50), 0.1)


def test_warmup_ratio_and_first_step_is_not_zero():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = WarmupCosineLR(opt, total_steps=100, warmup_ratio=0.1)
    assert sched.warmup_steps == 10
    assert opt.param_groups[0]["lr"] > 0
