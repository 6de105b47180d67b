"""Experiments with the trained small model: concept removal (B1) and view success (B2).

Samples are drawn with the same batched guided sampler as the Stable Diffusion pipeline
(`perpneg.sampling.denoise`) and labelled by the attribute classifier.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from diffusers import DDIMScheduler

from perpneg.data import VIEWS, parse_caption
from perpneg.sampling import GuidanceSpec, denoise, unet_denoiser
from perpneg.train import noise_scheduler
from reprozoo.config import ConfigError
from reprozoo.metrics import bootstrap_ci
from reprozoo.results import summarize

METHOD_LABELS = {
    "cfg": "CFG (main prompt only)",
    "sd_negative": "SD negative prompt (replace ∅)",
    "composable": "composable NOT (Liu et al.)",
    "perpneg": "Perp-Neg",
}


@dataclass(frozen=True)
class EvalConfig:
    """Sampling settings of the trained-model experiments."""

    seeds: tuple[int, ...] = field(default=(0, 1, 2), metadata={"help": "sampling seeds"})
    n_samples: int = field(default=48, metadata={"help": "images per arm and seed"})
    steps: int = field(default=12, metadata={"help": "DDIM steps"})
    scale: float = field(default=3.0, metadata={"help": "guidance scale s of B2 (views)"})
    removal_scales: tuple[float, ...] = field(
        default=(3.0, 7.5), metadata={"help": "guidance scales at which B1 is run"}
    )
    removal_weight: float = field(default=1.5, metadata={"help": "negative weight in B1"})
    view_weights: tuple[float, ...] = field(
        default=(1.0, 2.0), metadata={"help": "negative weights of the view experiment"}
    )
    subject: str = field(default="square", metadata={"help": "subject of the view prompts"})
    n_boot: int = field(default=1000, metadata={"help": "bootstrap resamples"})

    def __post_init__(self) -> None:
        if not self.seeds or self.n_samples < 1 or self.steps < 2:
            raise ConfigError("need ≥ 1 seed, n_samples ≥ 1 and steps ≥ 2")
        if min(self.scale, *self.removal_scales) <= 1:
            raise ConfigError("guidance scales must be > 1")
        if any(w < 0 for w in (*self.view_weights, self.removal_weight)):
            raise ConfigError("negative weights are magnitudes w ≥ 0")
        parse_caption(self.subject)


def ddim() -> DDIMScheduler:
    return DDIMScheduler.from_config(
        noise_scheduler().config, set_alpha_to_one=True, clip_sample=True
    )


@torch.no_grad()
def sample_images(
    unet,
    encoder,
    method: str,
    pos: str,
    negs: list[str],
    weights: list[float],
    cfg: EvalConfig,
    seed: int,
) -> torch.Tensor:
    """Images in [−1, 1] from the trained model with one guidance rule."""
    n = cfg.n_samples

    def emb(text: str) -> torch.Tensor:
        return encoder(parse_caption(text)[None].repeat(n, 1))

    spec = GuidanceSpec(
        uncond=emb(""),
        pos=emb(pos),
        negs=[emb(t) for t in negs],
        neg_weights=weights,
        method=method,
        scale=cfg.scale,
    )
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 16, 16, generator=g)
    out = denoise(unet_denoiser(unet), ddim(), x, spec, cfg.steps, generator=g)
    return out.clamp(-1, 1)


@torch.no_grad()
def classify(clf, images: torch.Tensor) -> torch.Tensor:
    """(N, 3) predicted (shape, view, hat) indices."""
    return clf(images).argmax(-1)


def _cell(per_seed: list[np.ndarray], cfg: EvalConfig) -> dict:
    cell = summarize([float(v.mean()) for v in per_seed])
    cell["ci95"] = list(bootstrap_ci(np.concatenate(per_seed).astype(float), n_boot=cfg.n_boot))
    return cell


def experiment_removal(unet, encoder, clf, cfg: EvalConfig, grid: dict | None = None) -> list[dict]:
    """B1: main "square wearing a hat", negative "hat with a red brim" (shared word: hat)."""
    pos, neg = "square wearing a hat", "hat with a red brim"
    square = parse_caption("square")[0] - 1
    rows = []
    for scale, (method, label) in itertools.product(cfg.removal_scales, METHOD_LABELS.items()):
        keep, removed, success = [], [], []
        at_scale = replace(cfg, scale=scale)
        for seed in cfg.seeds:
            imgs = sample_images(
                unet, encoder, method, pos, [neg], [cfg.removal_weight], at_scale, seed
            )
            if grid is not None and seed == cfg.seeds[0]:
                grid[f"{label}, s={scale:g}"] = imgs[:8]
            lab = classify(clf, imgs).numpy()
            k = (lab[:, 0] == square.item()) & (lab[:, 2] > 0)
            r = lab[:, 2] != 1
            keep.append(k), removed.append(r), success.append(k & r)
        rows.append(
            {
                "method": label,
                "s": scale,
                "keep square∧hat": _cell(keep, cfg),
                "no red brim": _cell(removed, cfg),
                "success": _cell(success, cfg),
            }
        )
    return rows


def experiment_views(unet, encoder, clf, cfg: EvalConfig, grid: dict | None = None) -> list[dict]:
    """B2: "<subject>, <target> view" with the other two views as negatives."""
    subject = parse_caption(cfg.subject)[0].item() - 1
    rows = []
    for target in ("side", "back"):
        pos = f"{cfg.subject}, {target} view"
        negs = [f"{cfg.subject}, {v} view" for v in VIEWS if v != target]
        arms = [("cfg", 0.0), ("sd_negative", 1.0)]
        arms += [("composable", cfg.view_weights[0])]
        arms += [("perpneg", w) for w in cfg.view_weights]
        for method, w in arms:
            kept, success = [], []
            for seed in cfg.seeds:
                imgs = sample_images(unet, encoder, method, pos, negs, [w] * 2, cfg, seed)
                name = METHOD_LABELS[method]
                name += f", w={w:g}" if method in ("composable", "perpneg") else ""
                if grid is not None and seed == cfg.seeds[0] and target == "back":
                    grid[name] = imgs[:8]
                lab = classify(clf, imgs).numpy()
                k = lab[:, 0] == subject
                kept.append(k), success.append(k & (lab[:, 1] == VIEWS.index(target)))
            rows.append(
                {
                    "target view": target,
                    "method": name,
                    f"{cfg.subject} kept": _cell(kept, cfg),
                    "view success": _cell(success, cfg),
                }
            )
    return rows


def save_grid(grid: dict[str, torch.Tensor], path: str | Path) -> Path:
    """A labelled PNG: one row of samples per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(grid), 1, figsize=(8, 1.1 * len(grid)))
    for ax, (name, imgs) in zip(np.atleast_1d(axes), grid.items(), strict=True):
        row = torch.cat(list((imgs + 1) / 2), dim=2).permute(1, 2, 0).numpy()
        ax.imshow(row.clip(0, 1), interpolation="nearest")
        ax.set_title(name, fontsize=8, loc="left")
        ax.axis("off")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
