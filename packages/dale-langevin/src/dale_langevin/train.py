"""Training loop for the multiplicative model and the additive baseline (spec §1.11).

Runs unchanged under torchrun (each process draws its share of the global batch; DDP averages
the gradients):

    dale-langevin train --out runs/dl
    torchrun --nproc-per-node 2 -m dale_langevin.cli train --out runs/dl

Every random draw of step i comes from a generator seeded by (seed, i, rank), so a run that is
interrupted and resumed from its checkpoint gives the same weights as one that was not.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from dale_langevin import __version__
from dale_langevin.config import DaleConfig
from dale_langevin.data import ImageData
from dale_langevin.method import mdsm_loss, ve_dsm_loss
from dale_langevin.model import MLP, NCSN, UNet, build_network
from dale_langevin.score import GBMScore, VEScore, gbm_of, ve_of
from dale_langevin.sde import check_positive, largest_pairwise_distance
from reprozoo.checkpoint import (
    load_training_state,
    save_pretrained_atomic,
    save_training_state,
)
from reprozoo.config import config_to_dict
from reprozoo.results import atomic_write_json
from reprozoo.runtime import (
    barrier,
    get_logger,
    log_run_header,
    progress,
    seed_everything,
    setup_distributed,
)

PACKAGE = "dale-langevin"
NETWORKS = {"unet": UNet, "ncsn": NCSN, "mlp": MLP}
log = get_logger("dale_langevin")


@dataclass
class Trained:
    """A trained score network (EMA weights) with what sampling needs to know about it."""

    net: nn.Module
    cfg: DaleConfig
    sigma_max: float
    steps: int = 0
    wall_s: float = 0.0
    losses: list = field(default_factory=list)


def progress_bar(iterable, show: bool, **kwargs):
    """The core's tqdm bar, or a silent one when the caller asked for none."""
    return progress(iterable, **kwargs) if show else tqdm(iterable, disable=True)


def step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 64 + rank)


def ve_sigma_max(cfg: DaleConfig, data: ImageData) -> float:
    """σ_max of the VE baseline: the configured value, else the data's largest pairwise distance."""
    return cfg.ve_sigma_max or largest_pairwise_distance(data.train)


def batch_loss(net: nn.Module, cfg: DaleConfig, pixels: torch.Tensor, gen: torch.Generator, sm):
    """One Monte-Carlo estimate of the training loss on `pixels` (spec §1.11, steps 1–5)."""
    b = len(pixels)
    k = torch.randint(1, cfg.levels + 1, (b,), generator=gen)
    t = (k.double() * cfg.horizon / cfg.levels).float()
    z = torch.randn(pixels.shape, generator=gen)
    tb = t.view(-1, *([1] * (pixels.ndim - 1)))
    if cfg.process == "gbm":
        gbm = gbm_of(cfg)
        x0 = pixels + cfg.offset
        xt = gbm.forward_sample(x0, tb, z)  # noised at t ...
        return mdsm_loss(GBMScore(net, cfg)(xt, t), z, tb, gbm, cfg.weighting)  # ... loss at t
    ve = ve_of(cfg, sm)
    std = ve.marginal_std(tb)
    return ve_dsm_loss(VEScore(net, ve)(ve.forward_sample(pixels, tb, z), t), z, std)


def train_model(
    cfg: DaleConfig,
    data: ImageData,
    out: str | Path,
    *,
    seed: int = 0,
    device: str = "cpu",
    resume: bool = True,
    show_progress: bool = True,
) -> Trained:
    """Train `cfg.process` on `data.train` for `cfg.steps` steps, checkpointing into `out`."""
    out = Path(out)
    dist = setup_distributed(device)
    config = {**config_to_dict(cfg), "seed": seed}
    if dist.is_main:
        log_run_header(log, package=PACKAGE, config=config, seed=seed, device=dist.device)
    if cfg.process == "gbm":
        check_positive(data.train + cfg.offset, "training data (pixels + offset)")
    sm = ve_sigma_max(cfg, data)
    seed_everything(seed)
    net = build_network(cfg.arch, 1, cfg.image_size, cfg.width, cfg.time_embedding, cfg.levels)
    net = net.to(dist.device)
    ema = copy.deepcopy(net).requires_grad_(False)
    model = nn.parallel.DistributedDataParallel(net) if dist.enabled else net
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)

    # Resume from the checkpoint when one exists (a different config is refused, steps aside).
    step, losses, window, ckpt, wall_before = 0, [], [], out / "checkpoint", 0.0
    loss_window = min(50, cfg.checkpoint_every)  # mean training loss logged per window
    if resume and (ckpt / "meta.json").exists():
        step, extra = load_training_state(
            ckpt,
            package=PACKAGE,
            config=config,
            modules={"net": net, "ema": ema},
            optimizers={"adam": opt},
            ignore_keys=("steps",),
        )
        losses, window = list(extra.get("losses", [])), list(extra.get("window", []))
        wall_before = float(extra.get("wall_s", 0.0))
        log.info("resumed from %s at step %d", ckpt, step)

    pixels = data.train.to(dist.device)
    local_batch = max(1, cfg.batch_size // dist.world_size)
    started = time.time()
    bar = progress_bar(range(step, cfg.steps), show_progress, desc=f"train {cfg.process}")
    for step in bar:
        gen = step_generator(seed, step, dist.rank)
        idx = torch.randint(len(pixels), (local_batch,), generator=gen)
        loss = batch_loss(model, cfg, pixels[idx], gen, sm)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        opt.step()
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), net.parameters(), strict=True):
                pe.lerp_(p, 1.0 - cfg.ema)

        window.append(float(loss.detach()))
        if (step + 1) % loss_window == 0:
            losses.append([step + 1, sum(window) / len(window)])
            window = []
            bar.set_postfix(loss=f"{losses[-1][1]:.3f}")
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
            if dist.is_main:
                save_training_state(
                    ckpt,
                    package=PACKAGE,
                    version=__version__,
                    config=config,
                    step=step + 1,
                    modules={"net": net, "ema": ema},
                    optimizers={"adam": opt},
                    extra={
                        "losses": losses,
                        "window": window,
                        "wall_s": wall_before + time.time() - started,
                    },
                )
            barrier()

    final = ema if cfg.ema > 0 else net
    if dist.is_main:
        save_pretrained_atomic(final, out / "model")
        atomic_write_json(out / "model" / "dale_config.json", {**config, "sigma_max": sm})
    # Training wall time summed over every session that contributed to this checkpoint.
    wall = wall_before + time.time() - started
    return Trained(final.eval(), cfg, sm, cfg.steps, wall, losses)


def load_trained(path: str | Path) -> Trained:
    """A model written by `train_model` (the `model` folder inside a run's output)."""
    from reprozoo.checkpoint import CheckpointError

    path = Path(path)
    model_dir = path / "model" if (path / "model").is_dir() else path
    cfg_file = model_dir / "dale_config.json"
    if not cfg_file.is_file():
        raise CheckpointError(
            f"no trained model at {model_dir} (expected dale_config.json and the weights); "
            "train one first with `dale-langevin train --out DIR`"
        )
    raw = json.loads(cfg_file.read_text())
    sm = raw.pop("sigma_max")
    raw.pop("seed", None)
    cfg = DaleConfig(**raw)
    net = NETWORKS[cfg.arch].from_pretrained(str(model_dir))
    return Trained(net.eval(), cfg, sm, cfg.steps)
