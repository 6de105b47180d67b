"""Speed of the multiplicative samplers against the additive one, measured in the same run.

All three samplers run the same (untrained) network for the same number of steps on the same
batch, so the ratio isolates the cost of the update rule: DLS adds an exp per step, UMS a
product; the issue asks that DLS cost no more than 1.1× the additive update.
"""

from __future__ import annotations

import statistics

import torch

from dale_langevin.config import DaleConfig
from dale_langevin.method import Schedule, sample_gbm, sample_ve
from dale_langevin.model import build_network
from dale_langevin.score import GBMScore, VEScore, gbm_of, ve_of
from reprozoo.bench import ratio_table, time_call


def run_bench(cfg: DaleConfig, batch: int = 500, levels: int = 100, repeats: int = 7) -> dict:
    """Images per second of DLS, UMS and VE Euler–Maruyama at `levels` steps, plus the update
    rules alone (a zero network) to show the arithmetic cost without the network."""
    cfg = cfg.replace(levels=levels)
    torch.manual_seed(0)
    net = build_network(cfg.arch, 1, cfg.image_size, cfg.width, cfg.time_embedding, levels).eval()
    gbm, ve = gbm_of(cfg), ve_of(cfg, 5.0)
    shape = (batch, 1, cfg.image_size, cfg.image_size)
    x_pos = torch.exp(0.3 + 0.8 * torch.randn(shape))
    x_ve = 5.0 * torch.randn(shape)
    sched = Schedule.make("consistent", gbm)

    def zero(x, t):
        return torch.zeros_like(x)

    runs = {
        "VE Euler-Maruyama (additive)": lambda: sample_ve(VEScore(net, ve), x_ve, ve),
        "DLS (multiplicative, exp)": lambda: sample_gbm(
            GBMScore(net, cfg), x_pos, gbm, "dls", sched
        ),
        "UMS (multiplicative)": lambda: sample_gbm(GBMScore(net, cfg), x_pos, gbm, "ums", sched),
        "update only: VE": lambda: sample_ve(zero, x_ve, ve),
        "update only: DLS": lambda: sample_gbm(zero, x_pos, gbm, "dls", sched),
        "update only: UMS": lambda: sample_gbm(zero, x_pos, gbm, "ums", sched),
    }
    # Round-robin repeats: on a shared machine a load spike then hits every sampler alike.
    times: dict[str, list[float]] = {name: [] for name in runs}
    for fn in runs.values():
        fn()  # warm-up
    for _ in range(repeats):
        for name, fn in runs.items():
            times[name].append(time_call(fn, warmup=0, repeats=1))
    seconds = {name: statistics.median(ts) for name, ts in times.items()}
    images_per_s = {name: batch / s for name, s in seconds.items()}
    full = {k: v for k, v in images_per_s.items() if not k.startswith("update")}
    only = {k: v for k, v in images_per_s.items() if k.startswith("update")}
    text = (
        f"{levels} sampler steps, batch {batch}, arch {cfg.arch}, "
        f"{torch.get_num_threads()} threads\n"
        + ratio_table(full, "VE Euler-Maruyama (additive)", "images/s")
        + "\n\n"
        + ratio_table(only, "update only: VE", "images/s")
    )
    return {"images_per_s": images_per_s, "table": text}
