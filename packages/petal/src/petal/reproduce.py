"""`petal reproduce`: the embedded reproduction of PETAL's continual CIFAR-10-C experiment.

For each dataset (Shapes-10, digits) and seed: train the small BN-CNN on the clean source
split, fit its SWAG-diagonal posterior, set p_th by CoTTA's rule, corrupt the test split with
the 15 corruptions at severity 5 in the standard order, and run every method over that one
lifelong stream. Then the 10-random-orders experiment on the first dataset. Tables and the
figure are rendered from the JSON record (`petal report`).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from petal.config import profile
from petal.corruptions import CORRUPTIONS
from petal.data import build_stream, load_source, random_orders
from petal.method import build_adapter
from petal.model import SmallBNCNN
from petal.stream import StreamResult, run_stream
from petal.tables import build_tables
from petal.train import (
    EMBEDDED_SWA_LR,
    SourceConfig,
    confidence_threshold,
    fit_swag_diagonal,
    train_source,
)
from reprozoo.config import ConfigError, config_to_dict
from reprozoo.runtime import get_logger, log_run_header

LOG = get_logger("petal")

# Row name → (adapter method, start from the SWAG mean?)
ROWS = {
    "Source": ("source", False),
    "Source (SWAG mean)": ("source", True),
    "BN adapt": ("bn", False),
    "TENT-continual": ("tent", False),
    "CoTTA": ("cotta", False),
    "CoTTA (SWAG-mean start)": ("cotta", True),
    "PETAL-SRes": ("petal-sres", True),
    "PETAL-FIM": ("petal-fim", True),
}


@dataclass(frozen=True)
class ReproduceConfig:
    """The embedded reproduction (`petal reproduce`); `--quick` shrinks every size."""

    datasets: tuple[str, ...] = field(
        default=("shapes", "digits"), metadata={"help": "embedded datasets: shapes, digits"}
    )
    seeds: tuple[int, ...] = field(default=(0, 1, 2), metadata={"help": "seeds (>= 3 for std)"})
    widths: tuple[int, ...] = field(
        default=(8, 16, 32, 64), metadata={"help": "channel widths of the BN-CNN stages"}
    )
    n_train: int = field(default=3000, metadata={"help": "source training images (shapes)"})
    n_test: int = field(default=384, metadata={"help": "test images per domain"})
    batch_size: int = field(default=32, metadata={"help": "test batch size"})
    ema: float = field(
        default=0.997, metadata={"help": "teacher EMA α (scaled to the stream length)"}
    )
    severity: int = field(default=5, metadata={"help": "corruption severity 1-5"})
    n_orders: int = field(default=10, metadata={"help": "random orders (0 = skip)"})
    order_rows: tuple[str, ...] = field(
        default=("CoTTA", "PETAL-FIM"),
        metadata={"help": "rows run in the random-orders experiment"},
    )
    spw: float = field(default=1e-9, metadata={"help": "PETAL prior weight λ"})
    source_steps: int = field(default=800, metadata={"help": "source training SGD steps"})
    source_per_seed: bool = field(
        default=False,
        metadata={
            "help": "train a source model and SWAG posterior per seed (slower); by "
            "default one per dataset, seeds vary the corruption draws and the adapters"
        },
    )
    swa_lr: float = field(default=EMBEDDED_SWA_LR, metadata={"help": "SWALR target learning rate"})

    def __post_init__(self) -> None:
        bad = set(self.datasets) - {"shapes", "digits"}
        if bad or not self.datasets:
            raise ConfigError(f"datasets must be among shapes, digits; got {self.datasets}")
        if not self.seeds:
            raise ConfigError("give at least one seed")
        if self.n_test < 2 * self.batch_size or self.batch_size < 2:
            raise ConfigError("n_test must hold at least two batches of batch_size >= 2")
        if self.severity not in range(1, 6):
            raise ConfigError(f"severity must be 1..5, got {self.severity}")
        unknown = set(self.order_rows) - set(ROWS)
        if unknown:
            raise ConfigError(f"unknown order_rows {sorted(unknown)}; choose from {list(ROWS)}")
        if self.n_orders < 0 or self.n_train < 100 or self.source_steps < 1:
            raise ConfigError("n_orders >= 0, n_train >= 100 and source_steps >= 1 required")


QUICK = ReproduceConfig(
    datasets=("digits",), seeds=(0, 1), widths=(4, 8, 8), n_train=300, n_test=32,
    batch_size=16, n_orders=1, order_rows=("CoTTA", "PETAL-FIM"), source_steps=30,
)  # fmt: skip


def _source_models(cfg: ReproduceConfig, dataset: str, seed: int):
    data = load_source(dataset, n_train=cfg.n_train, n_test=cfg.n_test, seed=seed)
    torch.manual_seed(seed)
    model = SmallBNCNN(num_classes=10, widths=cfg.widths)
    epochs = -(-cfg.source_steps * 64 // len(data.train_x))
    src_cfg = SourceConfig(epochs=epochs, flip=dataset != "digits", swa_lr=cfg.swa_lr)
    train_source(model, data.train_x, data.train_y, src_cfg, seed=seed)
    mean_model, posterior, snapshots = fit_swag_diagonal(
        model, data.train_x, data.train_y, src_cfg, seed=seed
    )
    ap = confidence_threshold(model, data.holdout_x)
    with torch.no_grad():
        clean = float((model.eval()(data.test_x).argmax(1) != data.test_y).float().mean())
    LOG.info("%s seed %d: clean test error of the source model %.4f", dataset, seed, clean)
    var = torch.cat([v.reshape(-1) for v in posterior.var()])
    LOG.info(
        "%s seed %d: p_th %.4f, SWAG snapshots %d, median s² %.3g",
        dataset,
        seed,
        ap,
        snapshots,
        float(var.median()),
    )
    return data, model, mean_model, posterior, ap


def _run_rows(cfg, rows, models, domains, seed, desc) -> dict[str, StreamResult]:
    model, mean_model, posterior, ap = models
    out = {}
    for row in rows:
        method, swag_start = ROWS[row]
        acfg = profile("embedded", method=method, ap=ap, batch_size=cfg.batch_size, spw=cfg.spw)
        start = mean_model if swag_start else model
        adapter = build_adapter(start, acfg, seed=seed, posterior=posterior)
        out[row] = run_stream(adapter, domains, cfg.batch_size, desc=f"{desc} {row}")
        LOG.info(
            "%s %-24s error %.4f nll %.4f brier %.4f (aug %.0f%% of batches, %.1f s)",
            desc,
            row,
            out[row].mean("error"),
            out[row].mean("nll"),
            out[row].mean("brier"),
            100 * out[row].augmented_share,
            out[row].seconds,
        )
    return out


def reproduce(cfg: ReproduceConfig, out_dir: str | Path, *, quick: bool = False) -> dict:
    """Run the whole embedded reproduction and write `<out_dir>/embedded.json` (+ figures)."""
    from reprozoo.results import write_record

    started = time.time()
    torch.set_num_threads(1)
    log_run_header(
        LOG, package="petal", config=config_to_dict(cfg), seed=cfg.seeds[0], device="cpu"
    )
    standard: dict[str, dict[str, list[StreamResult]]] = {}
    thresholds: dict[str, list[float]] = {}
    orders_models = None
    for dataset in cfg.datasets:
        standard[dataset] = {row: [] for row in ROWS}
        thresholds[dataset] = []
        shared = None
        for seed in cfg.seeds:
            if cfg.source_per_seed or shared is None:
                shared = _source_models(cfg, dataset, seed)
                thresholds[dataset].append(shared[-1])
            data, model, mean_model, posterior, ap = shared
            domains = build_stream(data.test_x, data.test_y, CORRUPTIONS, cfg.severity, seed)
            results = _run_rows(
                cfg,
                list(ROWS),
                (model, mean_model, posterior, ap),
                domains,
                seed,
                f"{dataset}/seed{seed}",
            )
            for row, res in results.items():
                standard[dataset][row].append(res)
            if orders_models is None:
                orders_models = (data, (model, mean_model, posterior, ap))

    orders: dict[str, list[StreamResult]] = {row: [] for row in cfg.order_rows}
    order_list = random_orders(cfg.n_orders, CORRUPTIONS, seed=cfg.seeds[0])
    if cfg.n_orders:
        data, models = orders_models
        for k, order in enumerate(order_list):
            domains = build_stream(data.test_x, data.test_y, order, cfg.severity, cfg.seeds[0])
            results = _run_rows(
                cfg,
                cfg.order_rows,
                models,
                domains,
                seed=100 + k,
                desc=f"{cfg.datasets[0]}/order{k}",
            )
            for row, res in results.items():
                orders[row].append(res)

    tables, figures, headline = build_tables(cfg, standard, orders)
    record = write_record(
        Path(out_dir) / ("quick.json" if quick else "embedded.json"),
        package="petal",
        experiment="embedded quick" if quick else "embedded",
        config={
            "reproduce": config_to_dict(cfg),
            "adapt": config_to_dict(profile("embedded", spw=cfg.spw, batch_size=cfg.batch_size)),
        },
        seeds=list(cfg.seeds),
        tables=tables,
        figures=figures,
        device="cpu (1 thread)",
        started=started,
        extra={
            "headline": headline,
            "p_th": thresholds,
            "orders": [list(o) for o in order_list],
            "raw": _raw(standard, orders),
        },
    )
    LOG.info("%s", headline)
    return record


def _raw(standard, orders) -> dict:
    """Per-seed, per-domain metrics, so that any table can be regenerated from the record."""

    def pack(results: list[StreamResult]) -> list[dict]:
        return [
            {
                "domains": r.domains,
                "metrics": r.metrics,
                "seconds": r.seconds,
                "augmented_share": r.augmented_share,
            }
            for r in results
        ]

    return {
        "standard": {
            d: {row: pack(rs) for row, rs in rows.items()} for d, rows in standard.items()
        },
        "orders": {row: pack(rs) for row, rs in orders.items()},
    }


def quick_config(**overrides) -> ReproduceConfig:
    return dataclasses.replace(QUICK, **overrides)
