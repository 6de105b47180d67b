"""One frozen config per setting: the embedded `digits` default, the `paper` profile and `quick`.

The paper's values (spec §1–2) are the defaults of the `paper` profile; `digits` is the CPU-scale
plan of spec §7; `quick` is a seconds-long smoke run for the tests.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from dale_langevin.method import WEIGHTINGS
from dale_langevin.model import ARCHS, TIME_EMBEDDINGS
from reprozoo.config import ConfigError

DATASETS = ("digits", "mnist", "fashion_mnist", "kmnist")


def _f(default, help_text: str):
    return field(default=default, metadata={"help": help_text})


@dataclass(frozen=True)
class DaleConfig:
    """Data, forward process, network, training and sampling of one run.

    The multiplicative (GBM) model and the additive pixel-space VE baseline share every field
    except `process`, so that the two train with the same network, budget and NFE.
    """

    dataset: Literal["digits", "mnist", "fashion_mnist", "kmnist"] = _f(
        "digits", "data set: digits (embedded 8x8) or a torchvision MNIST family set"
    )
    process: Literal["gbm", "ve"] = _f(
        "gbm", "forward process: gbm (the paper, multiplicative) or ve (additive baseline)"
    )
    offset: float = _f(1.0, "positivity offset c: x0 = pixel + c, must be > 0")
    sigma: float = _f(0.8, "GBM volatility sigma")
    mu: float = _f(0.32, "GBM drift mu (paper: sigma^2/2)")
    horizon: float = _f(1.0, "forward horizon T")
    levels: int = _f(1000, "number of discrete noise levels N (training and sampling)")
    ve_sigma_min: float = _f(0.01, "VE baseline: smallest noise std")
    ve_sigma_max: float = _f(
        0.0, "VE baseline: largest noise std; 0 = largest pairwise L2 distance of the train set"
    )
    arch: Literal["unet", "ncsn", "mlp"] = _f("mlp", "score network")
    width: int = _f(256, "network width (MLP hidden size, U-Net first width, NCSN ngf)")
    time_embedding: Literal["sinusoidal", "level"] = _f(
        "sinusoidal", "time input: sinusoidal features of t, or a learned embedding of level k"
    )
    input_mode: Literal["log", "paper"] = _f(
        "log", "network input for GBM: log x, or the released code's 2x - 1"
    )
    score_param: Literal["stein", "scaled"] = _f(
        "scaled",
        "stein: network output is the Stein score s, h = x*s (paper); "
        "scaled: network output divided by sigma*sqrt(t) is h (well conditioned)",
    )
    weighting: Literal["paper", "eps", "none"] = _f(
        "eps", "M-DSM weight lambda(t): paper = sigma^4 t^2, eps = sigma^2 t, none = 1"
    )
    steps: int = _f(5000, "training iterations")
    batch_size: int = _f(128, "global training batch size (split over torchrun processes)")
    lr: float = _f(1e-3, "Adam learning rate")
    ema: float = _f(0.999, "EMA decay of the weights used for sampling (0 = no EMA)")
    grad_clip: float = _f(1.0, "gradient-norm clip (0 = off)")
    checkpoint_every: int = _f(1000, "training steps between checkpoints")
    prior: Literal["pooled", "per_pixel"] = _f(
        "pooled", "log-normal prior fitted from data: one (m, s) pooled, or per pixel"
    )
    denoise_last: bool = _f(True, "take the last sampler update without noise")
    n_samples: int = _f(500, "samples generated per sampler for evaluation")
    sample_batch: int = _f(500, "sampler batch size")

    def __post_init__(self):
        problems = []
        if self.offset <= 0:
            problems.append(f"offset must be > 0 (log x0 needs x0 > 0), got {self.offset}")
        if self.sigma <= 0 or self.horizon <= 0:
            problems.append(f"sigma and horizon must be > 0, got {self.sigma}, {self.horizon}")
        if self.levels < 2:
            problems.append(f"levels must be >= 2, got {self.levels}")
        if self.ve_sigma_min <= 0:
            problems.append(f"ve_sigma_min must be > 0, got {self.ve_sigma_min}")
        if self.ve_sigma_max < 0 or (0 < self.ve_sigma_max <= self.ve_sigma_min):
            problems.append("ve_sigma_max must be 0 (from data) or larger than ve_sigma_min")
        for name in ("width", "steps", "batch_size", "checkpoint_every", "n_samples"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.sample_batch < 1:
            problems.append(f"sample_batch must be >= 1, got {self.sample_batch}")
        if not 0 <= self.ema < 1:
            problems.append(f"ema must be in [0, 1), got {self.ema}")
        if self.lr <= 0 or self.grad_clip < 0:
            problems.append(f"lr must be > 0 and grad_clip >= 0, got {self.lr}, {self.grad_clip}")
        choices = {
            "dataset": DATASETS,
            "arch": ARCHS,
            "time_embedding": TIME_EMBEDDINGS,
            "weighting": WEIGHTINGS,
            "process": ("gbm", "ve"),
            "input_mode": ("log", "paper"),
            "score_param": ("stein", "scaled"),
            "prior": ("pooled", "per_pixel"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                problems.append(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.dataset == "digits" and self.arch == "ncsn":
            problems.append("the NCSN network needs 28x28 inputs; use arch unet or mlp on digits")
        if problems:
            raise ConfigError("invalid DaleConfig: " + "; ".join(problems))

    @property
    def image_size(self) -> int:
        return 8 if self.dataset == "digits" else 28

    def replace(self, **changes) -> DaleConfig:
        return dataclasses.replace(self, **changes)


PROFILES = {
    "digits": DaleConfig(),
    # The released MNIST-family setting (spec §2): NCSN-deeper (ngf 128) conditioned on the
    # integer level, 2x - 1 input, Stein-score output, lambda = sigma^4 t^2, Adam 1e-4, batch
    # 128, 300 001 iterations, EMA 0.999, no clipping, pooled log-normal prior.
    "paper": DaleConfig(
        dataset="mnist",
        arch="ncsn",
        width=128,
        time_embedding="level",
        input_mode="paper",
        score_param="stein",
        weighting="paper",
        steps=300_001,
        lr=1e-4,
        grad_clip=0.0,
        checkpoint_every=5000,
        n_samples=10_000,
        sample_batch=1000,
    ),
    "quick": DaleConfig(steps=150, checkpoint_every=75, levels=50, n_samples=64, sample_batch=64),
}


def profile(name: str) -> DaleConfig:
    if name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    return PROFILES[name]
