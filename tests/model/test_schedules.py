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


def test_a_resumed_schedule_takes_the_new_runs_horizon():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    first = WarmupCosineLR(opt, total_steps=8, warmup_steps=0)
    for _ in range(8):
        opt.step()
        first.step()
    assert opt.param_groups[0]["lr"] == 0.0  # the end of an 8-step schedule
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    longer = WarmupCosineLR(opt2, total_steps=12, warmup_steps=0)  # resumed with max_steps 12
    longer.load_state_dict(first.state_dict())
    assert (longer.total_steps, longer.last_epoch) == (12, 8)
    opt2.step()
    longer.step()
    assert math.isclose(opt2.param_groups[0]["lr"], 0.5 * (1 + math.cos(math.pi * 9 / 12)))
