"""Experiments in the analytic concept world (spec §6a): concept removal, views, a sweep.

A1 concept removal: main prompt "boy ∧ sunglasses", negative "sunglasses ∧ black frame"
(the shared word is "sunglasses"). A2 views: subjects {lion, cat, car} × views
{front, side, back} with a front-biased prior and view words the "model" follows weakly;
prompt "lion, <target> view", negatives the other two views of the lion.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from perpneg.concepts import ConceptWorld, Prompt, build_world, ddim_sample
from perpneg.guidance import combine
from reprozoo.config import ConfigError
from reprozoo.metrics import bootstrap_ci
from reprozoo.results import summarize


@dataclass(frozen=True)
class AnalyticConfig:
    """Settings of the analytic reproduction (defaults = the spec's §6a plan)."""

    seeds: tuple[int, ...] = (0, 1, 2)
    n_samples: int = 3000
    steps: int = 50
    scale: float = 7.5
    dim: int = 8
    s0: float = 0.3
    q: float = 0.9
    removal_weight: float = 1.5
    view_weights: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0)
    view_prior: tuple[float, float, float] = (0.8, 0.15, 0.05)
    object_q: tuple[float, float] = (0.95, 0.025)
    view_q: tuple[float, float] = (0.5, 0.25)
    sweep_weights: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0)
    sweep_overlaps: tuple[float, ...] = (0.5, 0.7, 0.9)
    n_boot: int = 1000

    def __post_init__(self) -> None:
        if len(self.seeds) < 1 or self.n_samples < 10 or self.steps < 2:
            raise ConfigError("need ≥ 1 seed, n_samples ≥ 10 and steps ≥ 2")
        if self.scale <= 1:
            raise ConfigError(f"scale must be > 1 for guidance, got {self.scale}")
        for name in ("q",):
            if not 0.5 < getattr(self, name) < 1:
                raise ConfigError(f"{name} must lie in (0.5, 1), got {getattr(self, name)}")
        if abs(sum(self.view_prior) - 1) > 1e-6 or min(self.view_prior) <= 0:
            raise ConfigError(f"view_prior must be positive and sum to 1, got {self.view_prior}")
        if any(w < 0 for w in (*self.view_weights, *self.sweep_weights, self.removal_weight)):
            raise ConfigError("negative weights are given as magnitudes w ≥ 0")
        if any(not 0 < o < 1 for o in self.sweep_overlaps):
            raise ConfigError("overlaps are q of the shared word in the negative, in (0, 1)")

    @classmethod
    def quick(cls) -> AnalyticConfig:
        """Seconds-long settings for tests."""
        return cls(
            n_samples=200,
            steps=10,
            n_boot=100,
            view_weights=(1.0,),
            sweep_weights=(0.0, 2.0),
            sweep_overlaps=(0.5, 0.9),
        )


METHOD_LABELS = {
    "cfg": "CFG (main prompt only)",
    "sd_negative": "SD negative prompt (replace ∅)",
    "composable": "composable NOT (Liu et al.)",
    "perpneg": "Perp-Neg",
}


def sample(
    world: ConceptWorld,
    method: str,
    pos: Prompt,
    negs: list[Prompt],
    weights: list[float],
    cfg: AnalyticConfig,
    seed: int,
) -> torch.Tensor:
    """Attribute labels (N, A) of samples drawn with one guidance rule and exact scores."""
    w_u = world.prompt_weights({})
    w_pos = world.prompt_weights(pos)
    w_negs = [world.prompt_weights(n) for n in negs]

    def guided(x: torch.Tensor, alpha_bar: float) -> torch.Tensor:
        eps_u = world.eps(x, alpha_bar, w_u)
        eps_pos = world.eps(x, alpha_bar, w_pos)
        eps_negs = [world.eps(x, alpha_bar, w) for w in w_negs]
        return combine(method, eps_u, eps_pos, eps_negs, weights, cfg.scale)

    g = torch.Generator().manual_seed(seed)
    x0 = ddim_sample(guided, cfg.n_samples, cfg.dim, cfg.steps, g)
    return world.label(x0)


def removal_world(cfg: AnalyticConfig) -> ConceptWorld:
    return build_world(
        ("boy", "sunglasses", "black_frame"),
        allowed=lambda c: c["black_frame"] <= c["sunglasses"],
        dim=cfg.dim,
        s0=cfg.s0,
    )


def removal_prompts(cfg: AnalyticConfig, overlap: float) -> tuple[Prompt, Prompt]:
    """Main "boy ∧ sunglasses"; negative "sunglasses ∧ black frame" with the shared word at q."""
    q = (cfg.q, 1 - cfg.q)
    return {"boy": q, "sunglasses": q}, {"sunglasses": (overlap, 1 - overlap), "black_frame": q}


def _removal_metrics(labels: torch.Tensor) -> dict[str, np.ndarray]:
    boy, glasses, frame = (labels[:, i].numpy().astype(bool) for i in range(3))
    keep = boy & glasses
    return {"keep": keep, "removed": ~frame, "success": keep & ~frame}


def _cell(per_seed: list[np.ndarray], cfg: AnalyticConfig) -> dict:
    """mean ± std over seeds, plus a bootstrap 95% interval over all pooled samples."""
    cell = summarize([float(v.mean()) for v in per_seed])
    cell["ci95"] = list(bootstrap_ci(np.concatenate(per_seed).astype(float), n_boot=cfg.n_boot))
    return cell


def experiment_removal(cfg: AnalyticConfig) -> list[dict]:
    """A1: one row per method with keep / removed / success over seeds."""
    world = removal_world(cfg)
    pos, neg = removal_prompts(cfg, cfg.q)
    rows = []
    for method, label in METHOD_LABELS.items():
        per_seed = [
            _removal_metrics(sample(world, method, pos, [neg], [cfg.removal_weight], cfg, s))
            for s in cfg.seeds
        ]
        row = {"method": label}
        for key, col in (
            ("keep", "keep boy∧sunglasses"),
            ("removed", "no black frame"),
            ("success", "success"),
        ):
            row[col] = _cell([m[key] for m in per_seed], cfg)
        rows.append(row)
    return rows


VIEWS = ("front", "side", "back")
SUBJECTS = ("lion", "cat", "car")


def view_world(cfg: AnalyticConfig) -> ConceptWorld:
    names = SUBJECTS + VIEWS
    prior = dict(zip(VIEWS, cfg.view_prior, strict=True))
    return build_world(
        names,
        allowed=lambda c: sum(c[s] for s in SUBJECTS) == 1 and sum(c[v] for v in VIEWS) == 1,
        prior=lambda c: next(prior[v] for v in VIEWS if c[v]),
        dim=cfg.dim,
        s0=cfg.s0,
    )


def experiment_views(cfg: AnalyticConfig) -> list[dict]:
    """A2: lion kept and view success for side and back targets, per method and weight."""
    world = view_world(cfg)
    lion, idx = world.attr_names.index("lion"), world.attr_names.index
    rows = []
    for target in ("side", "back"):
        pos = {"lion": cfg.object_q, target: cfg.view_q}
        negs = [{"lion": cfg.object_q, v: cfg.view_q} for v in VIEWS if v != target]
        arms = [("cfg", 0.0), ("sd_negative", 1.0)]
        arms += [(m, w) for m in ("composable", "perpneg") for w in cfg.view_weights]
        for method, w in arms:
            kept, success = [], []
            for s in cfg.seeds:
                lab = sample(world, method, pos, negs, [w] * len(negs), cfg, s)
                k = lab[:, lion].numpy().astype(bool)
                kept.append(k)
                success.append(k & lab[:, idx(target)].numpy().astype(bool))
            name = METHOD_LABELS[method] + (
                f", w={w:g}" if method in ("composable", "perpneg") else ""
            )
            rows.append(
                {
                    "target view": target,
                    "method": name,
                    "lion kept": _cell(kept, cfg),
                    f"success (lion ∧ {target})": _cell(success, cfg),
                }
            )
    return rows


def sweep(cfg: AnalyticConfig) -> dict:
    """Keep-rate and success of composable NOT and Perp-Neg over negative weight × overlap."""
    world = removal_world(cfg)
    out: dict = {"weights": list(cfg.sweep_weights), "series": {}}
    for overlap in cfg.sweep_overlaps:
        pos, neg = removal_prompts(cfg, overlap)
        for method in ("composable", "perpneg"):
            keep, success = [], []
            for w in cfg.sweep_weights:
                m = [
                    _removal_metrics(sample(world, method, pos, [neg], [w], cfg, s))
                    for s in cfg.seeds
                ]
                keep.append(summarize([float(x["keep"].mean()) for x in m]))
                success.append(summarize([float(x["success"].mean()) for x in m]))
            out["series"][f"{method}, overlap q={overlap:g}"] = {"keep": keep, "success": success}
    return out


def config_dict(cfg: AnalyticConfig) -> dict:
    return asdict(cfg)
