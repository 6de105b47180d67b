"""`unpg reproduce`: base heads against +UNPG on SynthID, several seeds, one record.

Each (head, ±UNPG, seed) run trains with the same data order and schedule, then is scored on
identity-disjoint test identities (all-pairs TAR@FAR, 10-fold accuracy, templates, the local
WDFS rate) and on a probe of training images (the negative-similarity mismatch diagnostics).
Finished runs are cached as JSON under the run folder, so an interrupted reproduction resumes.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from reprozoo.config import ConfigError, config_to_dict
from reprozoo.results import atomic_write_json, write_record
from reprozoo.runtime import get_logger
from unpg import evaluate as ev
from unpg import report
from unpg.config import PROFILES, TrainConfig
from unpg.diagnostics import mismatch
from unpg.synth import SynthConfig, SynthSplit, generate
from unpg.train import TensorSource, train

log = get_logger("unpg.reproduce")
NAMES = {
    "arcface": "ArcFace",
    "cosface": "CosFace",
    "magface": "MagFace",
    "adaface": "AdaFace",
    "curricularface": "CurricularFace",
    "sphereface": "SphereFace",
}
ROC_GRID = [float(f) for f in np.logspace(-5, -1, 17)]
# Official README, MS1MV2 / IResNet-100: Δ = (+UNPG) − base in points (spec section 3.1).
PAPER_DELTA = {
    "ArcFace": {"TAR@1e-4": 0.08, "TAR@1e-5": 0.54, "10-fold acc": 0.00},
    "CosFace": {"TAR@1e-4": 0.04, "TAR@1e-5": 0.06, "10-fold acc": -0.02},
    "MagFace": {"TAR@1e-4": 0.84, "TAR@1e-5": 1.40, "10-fold acc": 0.00},
}


@dataclass(frozen=True)
class ReproConfig:
    """The embedded reproduction: which heads, seeds and training length."""

    heads: tuple[str, ...] = field(
        default=("arcface", "cosface"), metadata={"help": "base heads to pair with UNPG"}
    )
    seeds: tuple[int, ...] = field(default=(0, 1, 2), metadata={"help": "training seeds"})
    train: TrainConfig = PROFILES["synth"]
    margins: tuple[tuple[str, float], ...] = (
        ("arcface", 0.5),
        ("cosface", 0.35),
        ("adaface", 0.4),
        ("curricularface", 0.5),
        ("sphereface", 4.0),
    )
    synth: SynthConfig = SynthConfig()
    probe_per_identity: int = 5
    probe_identities: int = 400
    pairs_per_fold: int = 300
    templates: int = 2000

    def __post_init__(self):
        if len(self.seeds) < 1 or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds must be distinct and non-empty, got {self.seeds}")
        unknown = set(self.heads) - set(NAMES)
        if unknown:
            raise ConfigError(f"unknown heads {sorted(unknown)}; choose from {sorted(NAMES)}")

    def train_config(self, head: str, unpg: bool) -> TrainConfig:
        margin = dict(self.margins).get(head, self.train.margin)
        return dataclasses.replace(self.train, head=head, unpg=unpg, margin=margin)


QUICK = ReproConfig(
    heads=("arcface",),
    seeds=(0, 1),
    train=dataclasses.replace(PROFILES["synth"], steps=24, batch_size=32),
    synth=SynthConfig(train_families=12, test_families=10, images_per_identity=4),
    probe_identities=40,
    pairs_per_fold=20,
    templates=100,
)


# The spec's original difficulty (tau 0.6, rotations to 20 degrees, 1,000 training identities):
# a harder, less-trained regime, run for ArcFace only to fit the time budget.
HARD = ReproConfig(
    heads=("arcface",), synth=SynthConfig(train_families=200, tau=0.6, max_rotation_deg=20.0)
)
SETTINGS = {
    "default": ("synthid", None),
    "hard": ("synthid_hard", HARD),
    "quick": ("synthid_quick", QUICK),
}


def probe_indices(split: SynthSplit, per_identity: int, identities: int) -> torch.Tensor:
    picks = []
    for label in torch.unique(split.labels)[:identities]:
        picks.append((split.labels == label).nonzero().flatten()[:per_identity])
    return torch.cat(picks)


def evaluate_run(
    trainee, test: SynthSplit, train_split: SynthSplit, cfg: ReproConfig, seed: int
) -> dict:
    """Every metric of one trained model (floats and short lists only)."""
    backbone, head = trainee.backbone, trainee.loss.head
    emb = ev.embed(backbone, test.images)
    scores, same = ev.all_pair_scores(emb, test.identity)
    out = ev.verification_report(scores, same)
    out["roc"] = ev.roc_on_grid(scores, same, ROC_GRID)
    emb_flip = ev.embed(backbone, test.images, flip=True)
    s_flip, _ = ev.all_pair_scores(emb_flip, test.identity)
    out.update({f"flip_{k}": v for k, v in ev.verification_report(s_flip, same).items()})
    for hard in (False, True):
        pairs = ev.kfold_pairs(
            test.identity,
            test.family,
            test.pose,
            seed=0,
            hard=hard,
            pairs_per_fold=cfg.pairs_per_fold,
        )
        rep = ev.kfold_report(emb, *pairs)
        out.update({(f"hard_{k}" if hard else k): v for k, v in rep.items()})
    out.update(ev.template_report(emb, test.identity.numpy(), seed=0, n_templates=cfg.templates))
    out["wdfs_rate"] = ev.local_wdfs_rate(emb, test.identity)
    probe = probe_indices(train_split, cfg.probe_per_identity, cfg.probe_identities)
    p_emb = ev.embed(backbone, train_split.images[probe])
    out["mismatch"] = mismatch(
        p_emb,
        train_split.labels[probe],
        head.weight.detach().cpu(),
        cfg.train.batch_size,
        cfg.train.whisker,
        seed,
    )
    return out


def run_grid(cfg: ReproConfig, out: Path) -> dict:
    """Train and score every (head, ±UNPG, seed); cached per run."""
    started = time.time()
    train_split, test_split = generate(cfg.synth)
    log.info(
        "SynthID: %d train images (%d labels), %d test images (%d identities) in %.1fs",
        len(train_split.labels),
        train_split.num_classes,
        len(test_split.labels),
        len(torch.unique(test_split.identity)),
        time.time() - started,
    )
    source = TensorSource(train_split.images, train_split.labels)
    results = {}
    for head in cfg.heads:
        for unpg in (False, True):
            for seed in cfg.seeds:
                key = f"{head}{'+unpg' if unpg else ''}/seed{seed}"
                run_dir = out / "runs" / key.replace("/", "_")
                cache = run_dir / "metrics.json"
                tcfg = cfg.train_config(head, unpg)
                signature = {
                    "train": dataclasses.asdict(tcfg),
                    "synth": dataclasses.asdict(cfg.synth),
                }
                if cache.exists():
                    cached = json.loads(cache.read_text())
                    if cached.get("signature") != json.loads(json.dumps(signature)):
                        raise ConfigError(
                            f"{cache} was computed with another configuration; use a new --out "
                            "folder or delete it"
                        )
                    results[key] = cached
                    continue
                t0 = time.time()
                trainee, history = train(
                    tcfg,
                    source,
                    run_dir,
                    seed=seed,
                    extra_config={"synth": dataclasses.asdict(cfg.synth)},
                )
                metrics = evaluate_run(trainee, test_split, train_split, cfg, seed)
                metrics.update(history=history, train_seconds=time.time() - t0, signature=signature)
                atomic_write_json(cache, metrics)
                results[key] = metrics
                log.info(
                    "%s: TAR@1e-4 %.3f, 10-fold %.4f", key, metrics["tar@1e-04"], metrics["acc10"]
                )
    return results


def reproduce(
    cfg: ReproConfig, work: str | Path, results_dir: str | Path, experiment: str = "synthid"
) -> dict:
    """Run the grid and write ``<results_dir>/<experiment>.json`` plus its figures."""
    started = time.time()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    results = run_grid(cfg, Path(work) / experiment)
    heads, seeds = cfg.heads, cfg.seeds
    tables = [
        report.verification_table(results, heads, seeds, NAMES),
        report.delta_table(results, heads, seeds, NAMES, PAPER_DELTA),
        report.diagnostics_table(results, heads, seeds, NAMES),
    ]
    figures = report.figures(results, heads, seeds, NAMES, ROC_GRID, prefix=experiment)
    per_run = {
        k: {m: v for m, v in r.items() if m not in ("roc", "history", "mismatch")}
        for k, r in results.items()
    }
    return write_record(
        Path(results_dir) / f"{experiment}.json",
        package="unpg",
        experiment=experiment,
        config=config_to_dict(cfg),
        seeds=list(seeds),
        tables=tables,
        figures=figures,
        device="cpu",
        started=started,
        extra={
            "headline": report.headline(results, heads, seeds, NAMES),
            "runs": per_run,
            "train_seconds": {k: r["train_seconds"] for k, r in results.items()},
        },
    )
