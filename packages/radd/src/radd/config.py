"""Frozen training configs: the paper's setting and the CPU-scale embedded reproduction."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from radd.losses import LOSSES, TIME_LOSSES, TIME_SAMPLERS
from radd.model import MODEL_SIZES
from radd.schedule import SCHEDULES
from reprozoo.config import ConfigError

CORPORA = ("pydoc", "markov", "hf")


def _help(text: str) -> dict:
    return {"help": text}


@dataclass(frozen=True)
class TrainConfig:
    """One training setting. The defaults are the embedded CPU reproduction on pydoc bytes.

    `paper` (see PROFILES) holds the paper's values: RADD-small, OpenWebText with GPT-2 BPE,
    L = 1024, global batch 512, AdamW lr 3e-4 with 2500 warm-up steps then constant, weight
    decay 0, gradient clip 1, EMA 0.9999, log-linear schedule, 400k steps.
    """

    corpus: str = field(default="pydoc", metadata=_help(f"training corpus, one of {CORPORA}"))
    loss: str = field(default="lambda_dce", metadata=_help(f"training objective, one of {LOSSES}"))
    time_conditioned: bool = field(
        default=False,
        metadata=_help("train the SEDD-style time-conditioned score network instead of RADD"),
    )
    model_size: str = field(
        default="cpu", metadata=_help(f"network size, one of {tuple(MODEL_SIZES)}")
    )
    length: int = field(default=64, metadata=_help("sequence length L in tokens"))
    batch_size: int = field(default=32, metadata=_help("global batch size (all processes)"))
    steps: int = field(default=400, metadata=_help("optimiser steps"))
    lr: float = field(default=1e-3, metadata=_help("AdamW learning rate"))
    beta1: float = field(default=0.9, metadata=_help("AdamW beta1"))
    beta2: float = field(default=0.999, metadata=_help("AdamW beta2"))
    adam_eps: float = field(default=1e-8, metadata=_help("AdamW epsilon"))
    weight_decay: float = field(default=0.0, metadata=_help("AdamW weight decay"))
    warmup: int = field(default=50, metadata=_help("linear warm-up steps, then constant lr"))
    grad_clip: float = field(default=1.0, metadata=_help("gradient-norm clip (0 = off)"))
    ema: float = field(default=0.99, metadata=_help("EMA decay of the evaluated weights"))
    schedule: str = field(default="loglinear", metadata=_help(f"noise schedule, {SCHEDULES}"))
    time_sampler: str = field(
        default="iid", metadata=_help(f"draw of t / lambda across the batch, {TIME_SAMPLERS}")
    )
    sampling_eps: float = field(default=1e-3, metadata=_help("smallest training time t"))
    markov_vocab: int = field(default=8, metadata=_help("symbols of the Markov corpus"))
    markov_sequences: int = field(default=4096, metadata=_help("Markov training sequences"))
    dataset: str = field(
        default="openwebtext",
        metadata=_help("hf corpus: folder under <data-root>/radd/ saved by save_to_disk"),
    )
    tokenizer: str = field(
        default="gpt2", metadata=_help("hf corpus: tokenizer folder under <data-root>/radd/")
    )
    checkpoint_every: int = field(default=100, metadata=_help("steps between checkpoints"))

    def __post_init__(self) -> None:
        choices = {
            "corpus": CORPORA,
            "loss": LOSSES,
            "model_size": tuple(MODEL_SIZES),
            "schedule": SCHEDULES,
            "time_sampler": TIME_SAMPLERS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"--{name.replace('_', '-')} {getattr(self, name)!r} is not one of {allowed}"
                )
        positive = ("length", "batch_size", "steps", "lr", "markov_vocab", "markov_sequences")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(
                    f"--{name.replace('_', '-')} must be > 0, got {getattr(self, name)}"
                )
        for name in ("warmup", "weight_decay", "grad_clip", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 0")
        for name in ("beta1", "beta2", "ema", "sampling_eps"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"--{name.replace('_', '-')} must lie in [0, 1)")
        if self.time_conditioned and self.loss not in TIME_LOSSES:
            raise ConfigError(
                f"a time-conditioned model trains with a time-indexed loss {TIME_LOSSES}, "
                f"not {self.loss!r} (it has no meaning without t)"
            )
        if self.length < 2:
            raise ConfigError("--length must be at least 2")


PROFILES: dict[str, TrainConfig] = {
    "default": TrainConfig(),
    "quick": TrainConfig(model_size="tiny", length=32, batch_size=16, steps=30, warmup=5),
    "markov": TrainConfig(
        corpus="markov", model_size="tiny", length=12, batch_size=64, steps=300, warmup=20
    ),
    "paper": TrainConfig(
        corpus="hf",
        loss="t_dce",
        model_size="small",
        length=1024,
        batch_size=512,
        steps=400_000,
        lr=3e-4,
        warmup=2500,
        ema=0.9999,
        checkpoint_every=10_000,
    ),
}


def profile(name: str, **overrides) -> TrainConfig:
    if name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}; choose one of {tuple(PROFILES)}")
    return replace(PROFILES[name], **overrides)
