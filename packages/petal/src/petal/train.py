"""Source training and the SWAG-diagonal source posterior (spec 1.3, the official CIFAR recipe).

Usage (through the CLI): `petal train` trains the embedded source model, `petal swag` fits the
posterior of a trained model. Under `torchrun --nproc-per-node N` the source training runs data
parallel (gloo on CPU, nccl on GPU): each rank takes its shard of every batch and the gradients
are averaged, so the result does not depend on N beyond floating-point order.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from petal.method import Posterior
from reprozoo.config import ConfigError
from reprozoo.runtime import all_reduce_mean, progress

EMBEDDED_SWA_LR = 0.002
"""SWALR target of the embedded BN-CNN: with frozen BN it diverges above lr ≈ 0.007 (README)."""


@dataclass(frozen=True)
class SourceConfig:
    """Source training of the embedded model and its SWAG-diagonal fine-tuning."""

    epochs: int = field(default=12, metadata={"help": "source training epochs"})
    batch_size: int = field(default=64, metadata={"help": "source training batch size"})
    lr: float = field(default=0.05, metadata={"help": "source SGD learning rate (cosine)"})
    weight_decay: float = field(default=5e-4, metadata={"help": "source weight decay"})
    flip: bool = field(default=True, metadata={"help": "random horizontal flips (not digits)"})
    swag_epochs: int = field(default=5, metadata={"help": "SWAG fine-tuning epochs"})
    swag_collect_from: int = field(
        default=1, metadata={"help": "first epoch (0-based) whose end adds a snapshot"}
    )
    swag_lr: float = field(default=8e-4, metadata={"help": "SWAG SGD starting learning rate"})
    swa_lr: float = field(default=0.01, metadata={"help": "SWALR target learning rate"})
    swa_anneal_epochs: int = field(default=3, metadata={"help": "SWALR linear anneal epochs"})
    swag_batch_size: int = field(default=200, metadata={"help": "SWAG batch size"})

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "swag_epochs", "swag_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.swag_collect_from < self.swag_epochs:
            raise ConfigError("swag_collect_from must lie in [0, swag_epochs)")
        if min(self.lr, self.swag_lr, self.swa_lr) <= 0:
            raise ConfigError("learning rates must be positive")


def _random_crop(x: Tensor, pad: int, gen: torch.Generator) -> Tensor:
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    i, j = torch.randint(0, 2 * pad + 1, (2,), generator=gen).tolist()
    return padded[..., i : i + x.shape[-2], j : j + x.shape[-1]]


def _shard(batch: Tensor, rank: int, world: int) -> Tensor:
    return batch[rank::world]


def train_source(
    model: nn.Module, x: Tensor, y: Tensor, cfg: SourceConfig, seed: int, rank=0, world=1
) -> nn.Module:
    """SGD with momentum and a cosine schedule, light augmentation (crop, optional flip)."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay, nesterov=True
    )
    steps = cfg.epochs * ((len(x) + cfg.batch_size - 1) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=steps, pct_start=0.15
    )
    model.train()
    for _ in progress(range(cfg.epochs), desc="source training", leave=False):
        perm = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x), cfg.batch_size):
            idx = perm[start : start + cfg.batch_size]
            xb = _random_crop(x[idx], 2, gen)
            if cfg.flip and torch.rand((), generator=gen) < 0.5:
                xb = xb.flip(-1)
            xb, yb = _shard(xb, rank, world), _shard(y[idx], rank, world)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if world > 1:
                for p in model.parameters():
                    p.grad = all_reduce_mean(p.grad)
            opt.step()
            sched.step()
    return model.eval()


@torch.no_grad()
def recompute_bn_statistics(model: nn.Module, x: Tensor, batch_size: int = 200) -> nn.Module:
    """Reset BatchNorm running statistics and re-estimate them (cumulative mean) on x."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    for start in range(0, len(x), batch_size):
        model(x[start : start + batch_size])
    for bn, m in zip(bns, momenta, strict=True):
        bn.momentum = m
    return model.eval()


def fit_swag_diagonal(
    model: nn.Module, x: Tensor, y: Tensor, cfg: SourceConfig, seed: int
) -> tuple[nn.Module, Posterior, int]:
    """SWAG-diagonal as in the official CIFAR script, scaled to the embedded model.

    SGD (lr `swag_lr`, momentum 0.9, wd 5e-4), no augmentation, network in eval mode (frozen
    BN statistics, BN affine parameters still trained). From epoch `swag_collect_from` on, the
    weights at the end of each epoch are one snapshot and SWALR anneals the learning rate
    linearly toward `swa_lr`. Mean and population variance of the snapshots are accumulated
    in float64 (Welford, so the variance is non-negative by construction). The mean model's
    BN statistics are re-estimated on x. Returns (mean model, posterior, snapshot count).
    """
    work = copy.deepcopy(model).eval()
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(work.parameters(), lr=cfg.swag_lr, momentum=0.9, weight_decay=5e-4)
    swalr = torch.optim.swa_utils.SWALR(
        opt, swa_lr=cfg.swa_lr, anneal_epochs=cfg.swa_anneal_epochs, anneal_strategy="linear"
    )
    names = [n for n, _ in work.named_parameters()]
    mean = {n: torch.zeros_like(p, dtype=torch.float64) for n, p in work.named_parameters()}
    m2 = {n: torch.zeros_like(p, dtype=torch.float64) for n, p in work.named_parameters()}
    count = 0
    for epoch in progress(range(cfg.swag_epochs), desc="SWAG", leave=False):
        perm = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x), cfg.swag_batch_size):
            idx = perm[start : start + cfg.swag_batch_size]
            loss = F.cross_entropy(work(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if epoch >= cfg.swag_collect_from:
            count += 1
            for n, p in work.named_parameters():
                delta = p.detach().double() - mean[n]
                mean[n] += delta / count
                m2[n] += delta * (p.detach().double() - mean[n])
            swalr.step()

    if not all(torch.isfinite(m).all() for m in mean.values()):
        raise FloatingPointError(
            f"SWAG fine-tuning diverged (non-finite weights) with swa_lr={cfg.swa_lr}; "
            "lower --swa-lr (the network trains with frozen BN statistics here)"
        )
    mean_model = copy.deepcopy(model)
    with torch.no_grad():
        for n, p in mean_model.named_parameters():
            p.copy_(mean[n].to(p.dtype))
    recompute_bn_statistics(mean_model, x)
    var = {n: (m2[n] / count).float() for n in names}
    posterior = Posterior({n: mean[n].float() for n in names}, var)
    return mean_model, posterior, count


@torch.no_grad()
def confidence_threshold(model: nn.Module, x: Tensor, batch_size: int = 200) -> float:
    """CoTTA's rule for p_th: the 5% quantile of the source model's max-softmax confidence
    on held-out clean source images, minus 0.05 (cotta issue #16)."""
    model.eval()
    conf = torch.cat(
        [
            model(x[i : i + batch_size]).softmax(1).max(1).values
            for i in range(0, len(x), batch_size)
        ]
    )
    return float(torch.quantile(conf.double(), 0.05)) - 0.05
