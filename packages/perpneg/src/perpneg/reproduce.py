"""`perpneg reproduce`: the analytic concept world and the trained small model, end to end.

Writes `analytic.json` and `trained.json` records (with figures) under the output folder; the
README tables are generated from them by `perpneg report`.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import torch

from perpneg import analytic, trained
from perpneg.train import TrainConfig, load_model, train_classifier, train_diffusion
from reprozoo.config import ConfigError
from reprozoo.results import Figure, Table, write_record
from reprozoo.runtime import get_logger, log_run_header

log = get_logger("perpneg.reproduce")


def _ci_text(cell: dict) -> str:
    lo, hi = cell["ci95"]
    return f"[{lo:.3f}, {hi:.3f}]"


def _with_ci(rows: list[dict], column: str) -> list[dict]:
    """Add a "<column> 95% CI" text column (bootstrap over all pooled samples)."""
    return [{**r, f"{column} 95% CI": _ci_text(r[column])} for r in rows]


def run_analytic(cfg: analytic.AnalyticConfig, out: Path) -> dict:
    """Experiments A1, A2 and the weight × overlap sweep (spec §6a)."""
    started = time.time()
    log_run_header(log, package="perpneg", config=asdict(cfg), seed=cfg.seeds[0], device="cpu")
    removal = analytic.experiment_removal(cfg)
    views = analytic.experiment_views(cfg)
    sweep = analytic.sweep(cfg)
    tables = [
        Table(
            f"A1 concept removal, exact scores: main 'boy ∧ sunglasses', negative "
            f"'sunglasses ∧ black frame', w = {cfg.removal_weight:g}, s = {cfg.scale:g}",
            ["method", "keep boy∧sunglasses", "no black frame", "success", "success 95% CI"],
            _with_ci(removal, "success"),
            note=f"mean ± std over seeds {list(cfg.seeds)}, {cfg.n_samples} samples each.",
        ),
        Table(
            "A2 view success, exact scores: 'lion, <view> view' with the other two lion views "
            f"as negatives; view prior front/side/back = {list(cfg.view_prior)}",
            [
                "target view",
                "method",
                "lion kept",
                "success (lion ∧ side)",
                "success (lion ∧ back)",
            ],
            views,
            note="SD negative prompt: the two negatives averaged into ∅ (weights irrelevant).",
        ),
    ]
    figures = []
    for metric, label in (("keep", "P(boy ∧ sunglasses)"), ("success", "success")):
        figures.append(
            Figure(
                f"A1 sweep: {label} vs negative weight w",
                f"analytic_sweep_{metric}.png",
                x=sweep["weights"],
                series={
                    k: {
                        "mean": [c["mean"] for c in v[metric]],
                        "std": [c["std"] for c in v[metric]],
                    }
                    for k, v in sweep["series"].items()
                },
                xlabel="negative weight w",
                ylabel=label,
            )
        )
    pn = next(r for r in removal if r["method"] == analytic.METHOD_LABELS["perpneg"])
    cn = next(r for r in removal if r["method"] == analytic.METHOD_LABELS["composable"])
    headline = (
        f"Analytic concept world: concept-removal success {pn['success']['mean']:.3f} with "
        f"Perp-Neg vs {cn['success']['mean']:.3f} with composable negation."
    )
    return write_record(
        out / "analytic.json",
        package="perpneg",
        experiment="analytic concept world",
        config=asdict(cfg),
        seeds=cfg.seeds,
        tables=tables,
        figures=figures,
        device="cpu",
        started=started,
        extra={"sweep": sweep, "headline": headline},
    )


def run_trained(
    train_cfg: TrainConfig,
    eval_cfg: trained.EvalConfig,
    out: Path,
    work: Path,
    min_accuracy: float = 0.99,
) -> dict:
    """Train the classifier and the small model, then experiments B1 and B2 (spec §6b)."""
    started = time.time()
    config = {"train": asdict(train_cfg), "eval": asdict(eval_cfg), "min_accuracy": min_accuracy}
    log_run_header(log, package="perpneg", config=config, seed=train_cfg.seed, device="cpu")
    clf, accuracy = train_classifier(train_cfg.classifier_steps, train_cfg.seed)
    log.info("classifier held-out accuracy (all three attributes right): %.4f", accuracy)
    if accuracy < min_accuracy:
        raise RuntimeError(
            f"the attribute classifier reached {accuracy:.4f} < {min_accuracy} held-out accuracy;"
            " raise --classifier-steps before trusting its labels"
        )
    model_dir = train_diffusion(train_cfg, work, device="cpu")
    unet, encoder = load_model(model_dir)
    grid_b1: dict = {}
    grid_b2: dict = {}
    removal = trained.experiment_removal(unet, encoder, clf, eval_cfg, grid_b1)
    views = trained.experiment_views(unet, encoder, clf, eval_cfg, grid_b2)
    trained.save_grid(grid_b1, out / "trained_removal_grid.png")
    trained.save_grid(grid_b2, out / "trained_views_grid.png")
    subj = eval_cfg.subject
    tables = [
        Table(
            "B1 concept removal, trained model: main 'square wearing a hat', negative "
            f"'hat with a red brim', w = {eval_cfg.removal_weight:g}",
            ["method", "s", "keep square∧hat", "no red brim", "success", "success 95% CI"],
            _with_ci(removal, "success"),
            note=f"mean ± std over sampling seeds {list(eval_cfg.seeds)} of one trained model, "
            f"{eval_cfg.n_samples} images each; labels from a classifier with {accuracy:.4f} "
            "held-out accuracy.",
        ),
        Table(
            f"B2 view success, trained model: '{subj}, <view> view' with the other two views "
            f"as negatives, s = {eval_cfg.scale:g}",
            ["target view", "method", f"{subj} kept", "view success", "view success 95% CI"],
            _with_ci(views, "view success"),
        ),
    ]
    figures = [
        Figure(
            "B1 samples (first seed), one row per method", "trained_removal_grid.png", kind="image"
        ),
        Figure("B2 samples for the back view (first seed)", "trained_views_grid.png", kind="image"),
    ]
    first = [r for r in removal if r["s"] == eval_cfg.removal_scales[0]]
    pn = next(r for r in first if r["method"] == trained.METHOD_LABELS["perpneg"])
    cn = next(r for r in first if r["method"] == trained.METHOD_LABELS["composable"])
    headline = (
        f"Trained 16×16 model (s = {eval_cfg.removal_scales[0]:g}): concept-removal success "
        f"{pn['success']['mean']:.3f} with Perp-Neg vs {cn['success']['mean']:.3f} with "
        "composable negation."
    )
    return write_record(
        out / "trained.json",
        package="perpneg",
        experiment="trained small model",
        config=config,
        seeds=eval_cfg.seeds,
        tables=tables,
        figures=figures,
        device="cpu",
        started=started,
        extra={"classifier_accuracy": accuracy, "headline": headline},
    )


def quick_configs() -> tuple[analytic.AnalyticConfig, TrainConfig, trained.EvalConfig]:
    """Small settings for tests: invariants only, no claim about the results."""
    return (
        analytic.AnalyticConfig.quick(),
        TrainConfig(steps=4, batch_size=8, classifier_steps=40, checkpoint_every=2),
        trained.EvalConfig(
            seeds=(0, 1, 2),
            n_samples=4,
            steps=3,
            view_weights=(1.0,),
            removal_scales=(3.0,),
            n_boot=50,
        ),
    )


def reproduce(out: str | Path, work: str | Path, quick: bool = False, part: str = "all") -> list:
    """Run the reproduction; `part` is "analytic", "trained" or "all"."""
    if part not in ("analytic", "trained", "all"):
        raise ConfigError(f"part must be analytic, trained or all, got {part!r}")
    torch.set_num_threads(1)
    out, work = Path(out), Path(work)
    out.mkdir(parents=True, exist_ok=True)
    a_cfg, t_cfg, e_cfg = (
        quick_configs()
        if quick
        else (analytic.AnalyticConfig(), TrainConfig(), trained.EvalConfig())
    )
    records = []
    if part in ("analytic", "all"):
        records.append(run_analytic(a_cfg, out))
    if part in ("trained", "all"):
        records.append(run_trained(t_cfg, e_cfg, out, work, 0.0 if quick else 0.99))
    return records
