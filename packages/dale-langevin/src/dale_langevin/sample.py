"""Drawing images from a trained model: prior (§1.9), sampler (§1.6), map back to pixels (§1.10)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from dale_langevin.data import ImageData
from dale_langevin.method import SamplerStats, Schedule, sample_gbm, sample_ve
from dale_langevin.score import GBMScore, VEScore, gbm_of, ve_of
from dale_langevin.sde import fit_lognormal_prior
from dale_langevin.train import Trained, progress_bar

SAMPLERS = ("dls", "ums")
SCHEDULES = ("consistent", "paper", "piecewise")


@dataclass
class Samples:
    """Pixels in [0, 1] with the sampler's diagnostics."""

    pixels: torch.Tensor
    stats: SamplerStats
    clipped_fraction: float
    wall_s: float
    label: str


def gbm_prior(trained: Trained, data: ImageData, n: int, gen: torch.Generator, prior: str):
    """x_T ~ LogNormal(m_fit, s_fit²) fitted to the training data (pooled or per pixel)."""
    cfg = trained.cfg
    log_x0 = torch.log(data.train.double() + cfg.offset)
    m, s = fit_lognormal_prior(log_x0, gbm_of(cfg), per_pixel=prior == "per_pixel")
    z = torch.randn((n, *data.train.shape[1:]), generator=gen, dtype=torch.float64)
    return torch.exp(m + s * z).float()


def generate(
    trained: Trained,
    data: ImageData,
    n: int,
    *,
    sampler: str = "dls",
    schedule: str = "consistent",
    seed: int = 0,
    prior: str | None = None,
    keep_every: int = 0,
    show_progress: bool = False,
) -> Samples:
    """n samples from the trained model, in batches of `cfg.sample_batch`.

    For the GBM model `sampler` ∈ {dls, ums} and `schedule` ∈ {consistent, paper, piecewise};
    the VE baseline always runs Euler–Maruyama with δ = T/N. `prior` overrides `cfg.prior`.
    """
    cfg = trained.cfg
    gen = torch.Generator().manual_seed(seed)
    started = time.time()
    parts, total = [], SamplerStats()
    batches = range(0, n, cfg.sample_batch)
    for start in progress_bar(batches, show_progress, desc=f"sample {cfg.process}"):
        b = min(cfg.sample_batch, n - start)
        if cfg.process == "gbm":
            sched = Schedule.make(schedule, gbm_of(cfg), cfg.dataset, sampler)
            x_T = gbm_prior(trained, data, b, gen, prior or cfg.prior)
            score = GBMScore(trained.net, cfg)
            x, stats = sample_gbm(
                score, x_T, gbm_of(cfg), sampler, sched, gen, cfg.denoise_last, keep_every
            )
            low, high = cfg.offset, cfg.offset + 1.0
        else:
            ve = ve_of(cfg, trained.sigma_max)
            x_T = ve.sigma_max * torch.randn((b, *data.train.shape[1:]), generator=gen)
            x, stats = sample_ve(VEScore(trained.net, ve), x_T, ve, gen, cfg.denoise_last)
            low, high = 0.0, 1.0
        parts.append(x)
        total.nfe = stats.nfe
        total.min_value = min(total.min_value, stats.min_value)
        total.nonpositive += stats.nonpositive
        total.guard_hits += stats.guard_hits
        total.trajectory += [(x_k.clamp(low, high) - low) for x_k in stats.trajectory]
    x = torch.cat(parts)
    clipped = float(((x < low) | (x > high)).float().mean())
    label = f"{sampler}-{schedule}" if cfg.process == "gbm" else "ve-em"
    if cfg.process == "gbm" and (prior or cfg.prior) != "pooled":
        label += f" ({prior or cfg.prior} prior)"
    return Samples(x.clamp(low, high) - low, total, clipped, time.time() - started, label)
