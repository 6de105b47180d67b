"""Training of the small conditional diffusion model and of the attribute classifier.

    perpneg train --out runs/toy                                  # one process
    torchrun --nproc-per-node 2 -m perpneg.cli train --out runs/toy   # DDP (gloo on CPU)

The diffusion model is trained with the DDPM ε-objective on freshly generated images every
step (spec §6b); each step's batch, noise and timesteps come from a generator seeded by
(seed, rank, step), so an interrupted run resumes to exactly the same weights.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from torch.nn.parallel import DistributedDataParallel

from perpneg import __version__
from perpneg.data import GeneratorConfig, captions, render_batch, sample_attributes
from perpneg.model import AttributeClassifier, CaptionEncoder, make_unet
from reprozoo.checkpoint import (
    load_training_state,
    save_pretrained_atomic,
    save_training_state,
)
from reprozoo.config import ConfigError
from reprozoo.runtime import (
    all_reduce_mean,
    cleanup_distributed,
    get_logger,
    log_run_header,
    progress,
    setup_distributed,
)

log = get_logger("perpneg.train")
DEFAULT_DATA = GeneratorConfig()


@dataclass(frozen=True)
class TrainConfig:
    """Settings of the trained-model part (the embedded default)."""

    steps: int = field(default=800, metadata={"help": "optimisation steps of the diffusion model"})
    batch_size: int = field(default=64, metadata={"help": "images per step and process"})
    lr: float = field(default=2e-3, metadata={"help": "peak AdamW learning rate"})
    warmup: int = field(default=50, metadata={"help": "linear warm-up steps"})
    ema: float = field(default=0.99, metadata={"help": "EMA decay of the sampled weights"})
    channels: tuple[int, ...] = field(
        default=(16, 32, 32), metadata={"help": "UNet block_out_channels"}
    )
    embed_dim: int = field(default=32, metadata={"help": "caption embedding width"})
    checkpoint_every: int = field(default=200, metadata={"help": "steps between checkpoints"})
    classifier_steps: int = field(default=250, metadata={"help": "classifier training steps"})
    seed: int = field(default=0, metadata={"help": "training seed"})

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 2 or self.classifier_steps < 1:
            raise ConfigError("steps, classifier_steps ≥ 1 and batch_size ≥ 2 are required")
        if not 0 < self.lr < 1:
            raise ConfigError(f"lr must be in (0, 1), got {self.lr}")
        if not 0 <= self.ema < 1:
            raise ConfigError(f"ema must be in [0, 1), got {self.ema}")
        if any(c % 8 for c in self.channels) or len(self.channels) != 3:
            raise ConfigError(f"channels must be 3 multiples of 8, got {self.channels}")
        if self.checkpoint_every < 1:
            raise ConfigError("checkpoint_every must be ≥ 1")


def noise_scheduler() -> DDPMScheduler:
    """VP linear β 1e-4 … 0.02, T = 1000, ε-prediction (spec §6a/b)."""
    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_start=1e-4,
        beta_end=0.02,
        beta_schedule="linear",
        clip_sample=False,
    )


def step_generator(seed: int, rank: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + rank * 7_919 + step)


def _lr_at(cfg: TrainConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * frac))


def train_diffusion(
    cfg: TrainConfig,
    out: str | Path,
    data: GeneratorConfig = DEFAULT_DATA,
    device: str = "auto",
    stop_after: int | None = None,
) -> Path:
    """Train (or resume) the UNet; returns the folder of the final EMA model.

    `stop_after` ends the run early after that many steps (used to test resuming).
    """
    out = Path(out)
    dist = setup_distributed(device)
    torch.manual_seed(cfg.seed)
    unet = make_unet(cfg.embed_dim, cfg.channels).to(dist.device)
    ema = make_unet(cfg.embed_dim, cfg.channels).to(dist.device)
    ema.load_state_dict(unet.state_dict())
    ema.requires_grad_(False)
    encoder = CaptionEncoder(cfg.embed_dim).to(dist.device)
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=0.0)
    config = {"train": asdict(cfg), "data": asdict(data)}
    if dist.is_main:
        log_run_header(log, package="perpneg", config=config, seed=cfg.seed, device=dist.device)

    ckpt, start = out / "checkpoint", 0
    if (ckpt / "meta.json").exists():
        start, _ = load_training_state(
            ckpt,
            package="perpneg",
            config=config,
            modules={"unet": unet, "ema": ema},
            optimizers={"opt": opt},
        )
        log.info("resumed from %s at step %d", ckpt, start)
    model = DistributedDataParallel(unet) if dist.world_size > 1 else unet
    sched = noise_scheduler()
    a_bar = sched.alphas_cumprod.to(dist.device)

    done = start
    bar = progress(range(start, cfg.steps), desc="train diffusion", initial=start, total=cfg.steps)
    for step in bar:
        g = step_generator(cfg.seed, dist.rank, step)
        attrs = sample_attributes(cfg.batch_size, data, g)
        x0 = render_batch(attrs, g, data.noise).to(dist.device)
        cond = encoder(captions(attrs, data, g).to(dist.device))
        t = torch.randint(0, 1000, (cfg.batch_size,), generator=g).to(dist.device)
        eps = torch.randn(x0.shape, generator=g).to(dist.device)

        # DDPM ε-objective: x_t = √ᾱ_t x0 + √(1−ᾱ_t) ε.
        ab = a_bar[t].reshape(-1, 1, 1, 1)
        x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
        loss = F.mse_loss(model(x_t, t, encoder_hidden_states=cond).sample, eps)
        for group in opt.param_groups:
            group["lr"] = _lr_at(cfg, step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), unet.parameters(), strict=True):
                pe.lerp_(p, 1 - cfg.ema)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{float(all_reduce_mean(loss.detach())):.4f}")

        done = step + 1
        if dist.is_main and (done % cfg.checkpoint_every == 0 or done == cfg.steps):
            save_training_state(
                ckpt,
                package="perpneg",
                version=__version__,
                config=config,
                step=done,
                modules={"unet": unet, "ema": ema},
                optimizers={"opt": opt},
            )
        if stop_after is not None and done >= stop_after:
            break

    final = out / "model"
    if dist.is_main and done == cfg.steps:
        save_pretrained_atomic(ema, final / "unet")
        save_pretrained_atomic(encoder, final / "encoder")
    cleanup_distributed()
    return final


def train_classifier(
    steps: int, seed: int = 0, data: GeneratorConfig = DEFAULT_DATA, batch: int = 128
) -> tuple[AttributeClassifier, float]:
    """Train the evaluator on clean generator output; returns it and its held-out accuracy.

    The accuracy is the fraction of held-out images whose three attributes are all right.
    """
    torch.manual_seed(seed)
    clf = AttributeClassifier()
    opt = torch.optim.AdamW(clf.parameters(), lr=2e-3)
    for step in progress(range(steps), desc="train classifier"):
        g = step_generator(seed + 17, 0, step)
        attrs = sample_attributes(batch, data, g)
        # Uniform views and hats so that rare classes are learnt as well as common ones.
        attrs[:, 1:] = torch.randint(0, 3, (batch, 2), generator=g)
        loss = F.cross_entropy(
            clf(render_batch(attrs, g, data.noise)).reshape(-1, 3), attrs.reshape(-1)
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    clf.eval()
    g = step_generator(seed + 99, 0, 10**6)
    attrs = sample_attributes(2000, data, g)
    attrs[:, 1:] = torch.randint(0, 3, (2000, 2), generator=g)
    with torch.no_grad():
        pred = clf(render_batch(attrs, g, data.noise)).argmax(-1)
    return clf, float((pred == attrs).all(1).float().mean())


def load_model(folder: str | Path) -> tuple[torch.nn.Module, CaptionEncoder]:
    """The trained UNet and its caption encoder from `train_diffusion`'s output folder."""
    from diffusers import UNet2DConditionModel

    folder = Path(folder)
    if not (folder / "unet" / "config.json").is_file():
        raise ConfigError(
            f"{folder} holds no trained model (expected {folder}/unet and {folder}/encoder); "
            "run `perpneg train --out <dir>` first and pass <dir>/model"
        )
    return UNet2DConditionModel.from_pretrained(
        folder / "unet"
    ).eval(), CaptionEncoder.from_pretrained(folder / "encoder").eval()
