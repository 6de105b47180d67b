"""The embedded reproduction: GBM (both samplers, both schedules) vs pixel VE on the 8×8 digits.

For each seed, one multiplicative model and one additive model are trained with the same network,
steps, optimiser and EMA; each sampler then draws `n_samples` images at 1 000 NFE (4 000 for
the paper-tuned UMS, as published). Everything is scored against the test split by `Evaluator`.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from dale_langevin.bench import run_bench
from dale_langevin.config import DaleConfig, profile
from dale_langevin.data import load_digits
from dale_langevin.evaluate import Evaluator, train_classifier
from dale_langevin.model import count_parameters
from dale_langevin.plots import nearest_neighbour_panel, sample_grid
from dale_langevin.sample import generate
from dale_langevin.train import PACKAGE, train_model
from reprozoo.config import config_to_dict
from reprozoo.metrics import mean_std, paired_difference
from reprozoo.results import Figure, Table, render_record, summarize, update_readme_section
from reprozoo.results import write_record as write_result_record
from reprozoo.runtime import get_logger

log = get_logger("dale_langevin")

# (label, process, sampler, schedule, prior override)
VARIANTS = (
    ("DLS consistent", "gbm", "dls", "consistent", None),
    ("UMS consistent", "gbm", "ums", "consistent", None),
    ("DLS paper-tuned", "gbm", "dls", "paper", None),
    ("UMS paper-tuned", "gbm", "ums", "paper", None),
    ("DLS consistent, per-pixel prior", "gbm", "dls", "consistent", "per_pixel"),
    ("VE baseline (additive)", "ve", "em", "consistent", None),
)
QUALITY = ("fd", "kid", "precision", "recall", "min_class_share", "memorised_share")
COVERAGE = ("class_entropy", "kl_labels", "confidence", "is_score", "nn_l2_median")
COVERAGE += ("nn_ratio_share", "pixel_w1")
COMPUTE = ("min_iterate", "nonpositive", "guard_hits", "clipped", "params", "train_steps")
COMPUTE += ("nfe", "train_s", "sample_s")


def run_reproduction(
    out: str | Path, *, seeds=(0, 1, 2), quick: bool = False, cfg: DaleConfig | None = None
) -> dict:
    """Train, sample and score every variant for every seed; write the record and figures."""
    started = time.time()
    out = Path(out)
    cfg = cfg or profile("quick" if quick else "digits")
    name = "digits_quick" if quick else "digits"
    data = load_digits()
    clf, acc = train_classifier(data, epochs=3 if quick else 30)
    log.info("feature classifier: test accuracy %.4f", acc)
    evaluator = Evaluator(data, clf, kid_subset=min(100, cfg.n_samples))

    per_seed: dict[str, list[dict]] = {v[0]: [] for v in VARIANTS}
    floors, losses = [], {}
    for seed in seeds:
        floors.append(evaluator.real_floor(cfg.n_samples, seed))
        models = {}
        for process in ("gbm", "ve"):
            run_dir = out / "runs" / f"seed{seed}" / process
            models[process] = train_model(
                cfg.replace(process=process), data, run_dir, seed=seed, resume=not quick
            )
            losses[f"{process} seed {seed}"] = [v for _, v in models[process].losses]
        for label, process, sampler, schedule, prior in VARIANTS:
            trained = models[process]
            s = generate(
                trained,
                data,
                cfg.n_samples,
                sampler=sampler if process == "gbm" else "dls",
                schedule=schedule,
                seed=10_000 + seed,
                prior=prior,
            )
            row = evaluator(s.pixels)
            row.update(
                min_iterate=s.stats.min_value,
                nonpositive=s.stats.nonpositive,
                guard_hits=s.stats.guard_hits,
                clipped=s.clipped_fraction,
                params=count_parameters(trained.net),
                train_steps=trained.steps,
                nfe=s.stats.nfe,
                train_s=trained.wall_s,
                sample_s=s.wall_s,
            )
            per_seed[label].append(row)
            log.info("seed %d %s: fd %.3f kid %.4f", seed, label, row["fd"], row["kid"])
            if seed == seeds[0]:
                slug = label.split(" (")[0].replace(" ", "_").replace(",", "").lower()
                sample_grid(s.pixels, out / f"{name}_samples_{slug}.png", f"{label}, seed {seed}")
                if label in ("DLS consistent", "VE baseline (additive)"):
                    nearest_neighbour_panel(
                        s.pixels, data.train, out / f"{name}_nn_{slug}.png", label
                    )

    # Tables over seeds, with the real-vs-real floor beside the generated rows.
    def rows(keys):
        table = [{"method": "real train images (floor)", **_cells(floors, keys)}]
        table += [{"method": label, **_cells(per_seed[label], keys)} for label in per_seed]
        return table

    fd_gap = paired_difference(
        [r["fd"] for r in per_seed["DLS consistent"]],
        [r["fd"] for r in per_seed["VE baseline (additive)"]],
    )
    n_txt = f"{cfg.n_samples} samples per method and seed vs the {len(data.test)} test images"
    tables = [
        Table(
            "Sample quality on the 8x8 digits (classifier-feature FD/KID, k=3 precision/recall)",
            ["method", *QUALITY],
            rows(QUALITY),
            note=f"Mean ± std over seeds {list(seeds)}; {n_txt}. Feature classifier test "
            f"accuracy {acc:.3f}. FD(DLS consistent) − FD(VE) = {fd_gap['mean']:.3f} "
            f"(95% t-interval {fd_gap['ci_low']:.3f} to {fd_gap['ci_high']:.3f}).",
        ),
        Table("Coverage and memorisation", ["method", *COVERAGE], rows(COVERAGE)),
        Table(
            "Positivity and equal-compute accounting",
            ["method", *COMPUTE],
            [{"method": label, **_cells(per_seed[label], COMPUTE)} for label in per_seed],
            note="min_iterate: smallest state value over all iterates of all samples (GBM "
            "states are pixel + 1, VE states are pixels); nonpositive: entries <= 0 over all "
            "iterates; clipped: share of final values outside the pixel range.",
        ),
    ]
    if not quick:
        bench = run_bench(cfg)["images_per_s"]
        base = bench["VE Euler-Maruyama (additive)"]
        tables.append(
            Table(
                "Sampler speed at equal steps (100 steps, batch 500, same network, 1 thread)",
                ["sampler", "images/s", "x additive"],
                [{"sampler": k, "images/s": v, "x additive": v / base} for k, v in bench.items()],
                note="Measured in the same process as the baseline; 'update only' rows use a "
                "zero network to time the update rule alone. Higher is faster.",
            )
        )
    figures = [
        Figure(
            "Training loss (mean per 50 steps)",
            f"{name}_loss.png",
            series=losses,
            xlabel="x50 steps",
            ylabel="loss",
            logy=True,
        )
    ]
    for label in per_seed:
        slug = label.split(" (")[0].replace(" ", "_").replace(",", "").lower()
        figures.append(Figure(f"Samples: {label}", f"{name}_samples_{slug}.png", kind="image"))
    for slug in ("dls_consistent", "ve_baseline"):
        figures.append(Figure(f"Nearest neighbours: {slug}", f"{name}_nn_{slug}.png", kind="image"))
    return write_result_record(
        out / f"{name}.json",
        package=PACKAGE,
        experiment=name,
        config={**config_to_dict(cfg), "classifier_test_accuracy": acc},
        seeds=list(seeds),
        tables=tables,
        figures=figures,
        device="cpu",
        started=started,
        extra={
            "headline": headline(per_seed),
            "per_seed": per_seed,
            "floor": floors,
            "torch_threads": torch.get_num_threads(),
        },
    )


def headline(per_seed: dict[str, list[dict]]) -> str:
    """One sentence: positivity of the multiplicative samplers and FD against the baseline."""
    additive = "VE baseline (additive)"
    gbm = [label for label in per_seed if label != additive]
    low = min(r["min_iterate"] for label in gbm for r in per_seed[label])
    bad = sum(r["nonpositive"] for label in gbm for r in per_seed[label])

    def fd(label: str) -> str:
        mean, std = mean_std([r["fd"] for r in per_seed[label]])
        return f"{mean:.2f} ± {std:.2f}"

    return (
        f"digits, {len(per_seed[additive])} seeds: {bad} non-positive iterates over all "
        f"multiplicative samplers (smallest {low:.3f}); FD DLS consistent {fd('DLS consistent')} "
        f"vs additive VE {fd(additive)} at equal compute."
    )


def _cells(rows: list[dict], keys) -> dict:
    """Mean ± std over seeds; a quantity equal in every seed (NFE, parameters) stays plain."""
    out = {}
    for k in keys:
        values = [r[k] for r in rows]
        same = all(isinstance(v, int) for v in values) and len(set(values)) == 1
        out[k] = values[0] if same else summarize(values)
    return out


def update_readme(record: dict, readme: str | Path, prefix: str) -> Path:
    """Write the record's tables and figure links into the README's results section."""
    return update_readme_section(readme, render_record(record, figure_prefix=prefix))
