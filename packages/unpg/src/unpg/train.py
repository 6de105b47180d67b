"""Training loop: backbone + margin head (+ UNPG), SGD with warm-up and half-cosine decay.

Runs unchanged in one process or under ``torchrun --nproc-per-node N`` (gloo on CPU, nccl on
GPU): every process takes its slice of the same global batch, and UNPG's pair negatives are
formed over the gathered global batch, as the official DataParallel path does.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from reprozoo.checkpoint import load_training_state, save_training_state
from reprozoo.runtime import all_reduce_mean, get_logger, log_run_header, progress
from unpg import __version__
from unpg.config import TrainConfig
from unpg.heads import build_head
from unpg.method import UNPGLoss
from unpg.model import IResNet

log = get_logger("unpg.train")


class TensorSource:
    """In-memory training images (N×C×H×W) and labels; ``get`` returns a batch."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels
        self.num_classes = int(labels.max()) + 1

    def __len__(self):
        return len(self.labels)

    def get(self, idx: torch.Tensor):
        return self.images[idx], self.labels[idx]


class Trainee(nn.Module):
    """Backbone and loss in one module, so DistributedDataParallel wraps both."""

    def __init__(self, backbone: IResNet, loss: UNPGLoss):
        super().__init__()
        self.backbone, self.loss = backbone, loss

    def forward(self, images, labels):
        return self.loss(self.backbone(images), labels)


def total_steps(cfg: TrainConfig, n_images: int) -> int:
    return cfg.steps or max(1, int(cfg.epochs * n_images // cfg.batch_size))


def lr_factor(step: int, steps: int, warmup_fraction: float) -> float:
    """Linear warm-up from 0 over the first steps, then a half cosine down to 0."""
    warm = int(warmup_fraction * steps)
    if step < warm:
        return (step + 1) / warm
    return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))


def batch_indices(step: int, n: int, batch: int, seed: int) -> torch.Tensor:
    """The global batch of a step: epoch-wise permutations drawn from (seed, epoch), so a
    resumed run and every process see the same data order."""
    per_epoch = n // batch
    epoch, pos = divmod(step, per_epoch)
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=g)[pos * batch : (pos + 1) * batch]


def build(cfg: TrainConfig, num_classes: int, seed: int):
    torch.manual_seed(seed)
    backbone = IResNet(cfg.arch, cfg.in_channels, cfg.image_size, cfg.embedding_size)
    head = build_head(cfg.head, cfg.embedding_size, num_classes, **cfg.head_kwargs())
    loss = UNPGLoss(head, unpg=cfg.unpg, whisker=cfg.whisker, scope=cfg.scope)
    return Trainee(backbone, loss)


def train(
    cfg: TrainConfig,
    source,
    out: str | Path,
    *,
    seed: int = 0,
    dist=None,
    resume: bool = True,
    stop_after: int | None = None,
    extra_config: dict | None = None,
):
    """Train and return the :class:`Trainee` (and a short history).

    Args:
        source: an object with ``__len__``, ``num_classes`` and ``get(indices)``.
        out: run folder; ``checkpoint/`` inside it is resumed from when ``resume``.
        dist: a :class:`reprozoo.runtime.Distributed` (None: single process on CPU).
        stop_after: stop (after checkpointing) at this step; used to test resuming.
    """
    out = Path(out)
    rank, world, device = (
        (0, 1, torch.device("cpu")) if dist is None else (dist.rank, dist.world_size, dist.device)
    )
    if cfg.batch_size % world:
        raise ValueError(f"batch_size {cfg.batch_size} is not divisible by {world} processes")
    steps = total_steps(cfg, len(source))
    record = {"train": asdict(cfg), "seed": seed, **(extra_config or {})}
    if rank == 0:
        log_run_header(log, package="unpg", config=record, seed=seed, device=device)

    model = build(cfg, source.num_classes, seed).to(device)
    # As in the official code: one SGD over backbone and head, weight decay on every parameter.
    opt = torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, steps, cfg.warmup_fraction)
    )
    ckpt = out / "checkpoint"
    start = 0
    if resume and (ckpt / "meta.json").exists():
        start, _ = load_training_state(
            ckpt,
            package="unpg",
            config=record,
            modules={"model": model},
            optimizers={"opt": opt},
            schedulers={"sched": sched},
        )
        log.info("resumed from %s at step %d", ckpt, start)
    wrapped = DistributedDataParallel(model) if world > 1 else model

    history, local = [], cfg.batch_size // world
    t0 = time.time()
    model.train()
    for step in progress(range(start, steps), desc="train", initial=start, total=steps):
        idx = batch_indices(step, len(source), cfg.batch_size, seed)
        images, labels = source.get(idx[rank * local : (rank + 1) * local])
        if cfg.flip:
            g = torch.Generator().manual_seed(seed * 7919 + step)
            flip = (torch.rand(len(idx), generator=g) < 0.5)[rank * local : (rank + 1) * local]
            images = torch.where(flip[:, None, None, None], images.flip(3), images)
        loss = wrapped(images.to(device), labels.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower --lr")
        if step % 25 == 0 or step == steps - 1:
            history.append(
                {
                    "step": step,
                    "loss": float(all_reduce_mean(loss.detach())),
                    **model.loss.last_stats,
                }
            )
        done = step + 1
        if rank == 0 and done == start + 20 and steps > done:
            rate = (time.time() - t0) / 20
            log.info(
                "%.2fs per step: about %.0fs for the remaining %d steps",
                rate,
                rate * (steps - done),
                steps - done,
            )
        at_ckpt = cfg.checkpoint_every and done % cfg.checkpoint_every == 0
        if rank == 0 and (at_ckpt or done in (steps, stop_after)):
            save_training_state(
                ckpt,
                package="unpg",
                version=__version__,
                config=record,
                step=done,
                modules={"model": model},
                optimizers={"opt": opt},
                schedulers={"sched": sched},
            )
        if stop_after is not None and done >= stop_after:
            break
    if rank == 0:
        log.info("trained %d steps in %.1fs", steps - start, time.time() - t0)
    return model, history
