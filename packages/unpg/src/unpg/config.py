"""The training configuration (one frozen dataclass) and its named profiles."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Literal

from reprozoo.config import ConfigError
from unpg.heads import HEADS
from unpg.model import ARCHS


def _f(default, help_text):
    return field(default=default, metadata={"help": help_text})


@dataclass(frozen=True)
class TrainConfig:
    """One training setting. The ``paper`` profile holds the official hyper-parameters
    (MS1MV2, IResNet-100, batch 512, SGD 0.1, 20 epochs with 3 warm-up epochs, cosine)."""

    head: Literal[HEADS] = _f("arcface", "margin head (the base loss)")
    scale: float = _f(64.0, "logit scale s of the head (UNPG columns use the same s)")
    margin: float = _f(
        0.5, "head margin m (ArcFace/CosFace/CurricularFace/AdaFace; SphereFace takes an integer)"
    )
    arcface_mode: Literal["official", "insightface"] = _f(
        "official", "ArcFace beyond theta+m>pi: keep cos(theta+m) or use cos(theta)-m sin(m)"
    )
    unpg: bool = _f(False, "append the filtered mini-batch negatives (UNPG)")
    whisker: float = _f(1.5, "whisker r of the box-and-whisker filter (inf disables it)")
    scope: Literal["shared", "anchor"] = _f(
        "shared", "UNPG columns: shared by every row (paper) or only the pairs of each anchor"
    )
    arch: Literal[tuple(ARCHS)] = _f("iresnet100", "backbone")
    embedding_size: int = _f(512, "embedding dimension d")
    image_size: int = _f(112, "input side in pixels")
    in_channels: int = _f(3, "input channels (3 for RGB faces, 1 for SynthID)")
    batch_size: int = _f(512, "global batch size (split over torchrun processes)")
    epochs: float = _f(20.0, "training length in epochs (ignored when --steps > 0)")
    steps: int = _f(0, "training length in optimiser steps (0: derive from --epochs)")
    lr: float = _f(0.1, "peak learning rate of SGD")
    momentum: float = _f(0.9, "SGD momentum")
    weight_decay: float = _f(5e-4, "weight decay on backbone and head")
    warmup_fraction: float = _f(0.15, "linear warm-up share of the steps, then half cosine to 0")
    flip: bool = _f(True, "random horizontal flip augmentation")
    checkpoint_every: int = _f(1000, "steps between checkpoints (0: only at the end)")
    dataset: Literal["synth", "rec"] = _f("rec", "training data: SynthID or MXNet RecordIO")
    rec_name: str = _f("faces_emore/train", "record file under the data root, without .rec")

    def __post_init__(self):
        problems = []
        if self.scale <= 0:
            problems.append(f"scale must be > 0, got {self.scale}")
        if self.head == "sphereface":
            if int(self.margin) != self.margin or self.margin < 1:
                problems.append(f"SphereFace needs an integer margin >= 1, got {self.margin}")
        elif not 0 <= self.margin < math.pi / 2:
            problems.append(f"margin must be in [0, pi/2), got {self.margin}")
        if self.whisker < 0 or math.isnan(self.whisker):
            problems.append(f"whisker must be >= 0 (inf disables filtering), got {self.whisker}")
        if self.batch_size < 2:
            problems.append(f"batch_size must be >= 2 to form pairs, got {self.batch_size}")
        if self.steps < 0 or (self.steps == 0 and self.epochs <= 0):
            problems.append("give a positive --steps, or --steps 0 with a positive --epochs")
        if self.lr <= 0 or not 0 <= self.momentum < 1 or self.weight_decay < 0:
            problems.append("need lr > 0, 0 <= momentum < 1 and weight_decay >= 0")
        if not 0 <= self.warmup_fraction < 1:
            problems.append(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if self.embedding_size < 2 or self.image_size < 8 or self.in_channels < 1:
            problems.append("need embedding_size >= 2, image_size >= 8, in_channels >= 1")
        if self.checkpoint_every < 0:
            problems.append("checkpoint_every must be >= 0")
        if problems:
            raise ConfigError("invalid TrainConfig: " + "; ".join(problems))

    def head_kwargs(self) -> dict:
        kwargs = {"s": self.scale}
        if self.head in ("arcface", "cosface", "curricularface", "adaface"):
            kwargs["m"] = self.margin
        if self.head == "sphereface":
            kwargs["m"] = int(self.margin)
        if self.head == "arcface":
            kwargs["mode"] = self.arcface_mode
        return kwargs


PROFILES = {
    # MS1MV2 with the official zoo / hyp values (spec sections 2.3 and 4.2).
    "paper": TrainConfig(),
    # The embedded default: SynthID at 24x24 grayscale on 2 CPU cores (spec section 6.4).
    "synth": TrainConfig(
        arch="iresnet-micro",
        embedding_size=128,
        image_size=24,
        in_channels=1,
        batch_size=64,
        steps=300,
        lr=0.1,
        warmup_fraction=0.1,
        dataset="synth",
        checkpoint_every=0,
    ),
}
PROFILES["smoke"] = dataclasses.replace(PROFILES["synth"], steps=30, batch_size=32)
