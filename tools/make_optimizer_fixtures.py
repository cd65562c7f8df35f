#!/usr/bin/python3
"""Writes tests/fixtures/optim.json: what PyTorch's optimizers and LR schedulers compute, for
tests/test_optim.cpp to compare ctnn against. Only this script needs torch; the tests read JSON.

    /usr/bin/python3 tools/make_optimizer_fixtures.py      # Debian's python3-torch (1.13)

The parameters are those of nn.Linear(3, 2) ("0.weight" [2, 3], "0.bias" [2], the names inside
nn.Sequential). Each optimizer case runs 5 steps from fixed parameters with fixed gradients (set
by hand, so only the optimizer is under test), once in float32 and once in float64, and records
the parameters after every step and the final optimizer state.
"""
import json
import os
import warnings

import torch

STEPS = 5
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "optim.json")

# (name, torch class, constructor kwargs, per-step learning rates or None for constant)
OPTIMIZERS = [
    ("sgd", torch.optim.SGD, dict(lr=0.1), None),
    ("sgd_momentum", torch.optim.SGD, dict(lr=0.05, momentum=0.9), None),
    ("sgd_dampening_weight_decay", torch.optim.SGD, dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01), None),
    ("sgd_nesterov", torch.optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4), None),
    ("sgd_maximize", torch.optim.SGD, dict(lr=0.02, momentum=0.5, maximize=True), None),
    ("sgd_momentum_changing_lr", torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=1e-3),
     [0.1, 0.1, 0.05, 0.025, 0.0125]),
    ("adam", torch.optim.Adam, dict(lr=0.01), None),
    ("adam_weight_decay", torch.optim.Adam, dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1), None),
    ("adam_amsgrad", torch.optim.Adam, dict(lr=0.01, amsgrad=True), None),
    ("adam_changing_lr", torch.optim.Adam, dict(lr=0.01), [0.01, 0.005, 0.02, 0.001, 0.01]),
    ("adamw", torch.optim.AdamW, dict(lr=0.01), None),  # PyTorch's default weight_decay=0.01
    ("adamw_amsgrad", torch.optim.AdamW, dict(lr=0.02, weight_decay=0.1, amsgrad=True), None),
]

STATE_KEYS = ["momentum_buffer", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"]


def floats(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def initial_values():
    g = torch.Generator().manual_seed(20240601)
    weight = torch.randn(2, 3, generator=g, dtype=torch.float32)
    bias = torch.randn(2, generator=g, dtype=torch.float32)
    grads = []
    for step in range(STEPS):
        gw = torch.randn(2, 3, generator=g, dtype=torch.float32) * (0.5 + step)
        gb = torch.randn(2, generator=g, dtype=torch.float32) * 0.1
        if step == 3:
            gw[0, 0] = 0.0  # a zero gradient: AMSGrad's maximum and momentum decay alone
            gb[1] = 0.0
        grads.append((gw, gb))
    return weight, bias, grads


def run_optimizer(cls, kwargs, lrs, dtype):
    weight0, bias0, grads = initial_values()
    weight = torch.nn.Parameter(weight0.to(dtype).clone())
    bias = torch.nn.Parameter(bias0.to(dtype).clone())
    opt = cls([weight, bias], foreach=False, **kwargs)
    after = []
    for step in range(STEPS):
        if lrs is not None:
            for group in opt.param_groups:
                group["lr"] = lrs[step]
        weight.grad = grads[step][0].to(dtype).clone()
        bias.grad = grads[step][1].to(dtype).clone()
        opt.step()
        after.append({"0.weight": floats(weight), "0.bias": floats(bias)})
    state = {}
    for name, p in (("0.weight", weight), ("0.bias", bias)):
        for key in STATE_KEYS:
            if key in opt.state[p] and opt.state[p][key] is not None:
                state[f"{name}.{key}"] = floats(opt.state[p][key])
    steps = [float(opt.state[p]["step"]) for p in (weight, bias) if "step" in opt.state[p]]
    return after, state, (int(steps[0]) if steps else None)


def optimizer_cases():
    weight0, bias0, grads = initial_values()
    cases = []
    for name, cls, kwargs, lrs in OPTIMIZERS:
        case = {
            "name": name,
            "optimizer": cls.__name__,
            "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in kwargs.items()},
            "lrs": lrs,
            "initial": {"0.weight": floats(weight0), "0.bias": floats(bias0)},
            "grads": [{"0.weight": floats(gw), "0.bias": floats(gb)} for gw, gb in grads],
        }
        for dtype, key in ((torch.float32, "float32"), (torch.float64, "float64")):
            after, state, step = run_optimizer(cls, kwargs, lrs, dtype)
            case[key] = {"after_step": after, "final_state": state}
            if step is not None:
                case[key]["final_state_step"] = step
        cases.append(case)
    return cases


def scheduler_lrs(make, base_lr, count):
    """The lr after t = 0 .. count-1 calls of scheduler.step(), as an optimizer would see it."""
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=base_lr)
    sched = make(opt)
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(count - 1):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    return lrs


def schedule_cases():
    S = torch.optim.lr_scheduler
    cases = [
        ("step", dict(base_lr=0.1, step_size=3, gamma=0.5), lambda o: S.StepLR(o, step_size=3, gamma=0.5), 12),
        ("step_default_gamma", dict(base_lr=0.2, step_size=2), lambda o: S.StepLR(o, step_size=2), 7),
        ("multistep", dict(base_lr=0.1, milestones=[2, 5, 5, 9], gamma=0.1),
         lambda o: S.MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.1), 12),
        ("cosine", dict(base_lr=0.1, t_max=10, eta_min=0.001),
         lambda o: S.CosineAnnealingLR(o, T_max=10, eta_min=0.001), 16),
        ("cosine_no_floor", dict(base_lr=0.05, t_max=7), lambda o: S.CosineAnnealingLR(o, T_max=7), 8),
        ("linear", dict(base_lr=0.1, start_factor=0.25, end_factor=1.0, total_iters=4),
         lambda o: S.LinearLR(o, start_factor=0.25, end_factor=1.0, total_iters=4), 8),
        ("linear_default", dict(base_lr=0.3), lambda o: S.LinearLR(o), 8),
        ("linear_decay", dict(base_lr=0.1, start_factor=1.0, end_factor=0.5, total_iters=5),
         lambda o: S.LinearLR(o, start_factor=1.0, end_factor=0.5, total_iters=5), 8),
        ("warmup_cosine", dict(base_lr=0.1, warmup_iters=3, t_max=8, start_factor=0.1, eta_min=1e-4),
         lambda o: S.SequentialLR(o, [S.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=3),
                                      S.CosineAnnealingLR(o, T_max=8, eta_min=1e-4)], milestones=[3]), 12),
    ]
    out = []
    for name, params, make, count in cases:
        out.append({"name": name, "schedule": params, "lrs": scheduler_lrs(make, params["base_lr"], count)})
    return out


def main():
    warnings.simplefilter("ignore")  # SequentialLR's step(0) deprecation notice
    torch.set_num_threads(1)
    data = {
        "generator": "tools/make_optimizer_fixtures.py",
        "torch_version": torch.__version__,
        "steps": STEPS,
        "optimizers": optimizer_cases(),
        "schedules": schedule_cases(),
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT + ".tmp", "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    os.replace(OUT + ".tmp", OUT)
    print(f"wrote {os.path.normpath(OUT)}: {len(data['optimizers'])} optimizer cases, "
          f"{len(data['schedules'])} schedules (torch {torch.__version__})")


if __name__ == "__main__":
    main()
