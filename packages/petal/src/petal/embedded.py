"""`petal train`, `petal swag` and `petal adapt` on the embedded data (no download)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from petal.config import AdaptConfig
from petal.corruptions import CORRUPTIONS
from petal.data import build_stream, load_source
from petal.method import Posterior, build_adapter
from petal.model import SmallBNCNN
from petal.stream import StreamResult, run_stream
from petal.train import (
    EMBEDDED_SWA_LR,
    SourceConfig,
    confidence_threshold,
    fit_swag_diagonal,
    train_source,
)
from reprozoo.checkpoint import CheckpointError
from reprozoo.results import atomic_write_json
from reprozoo.runtime import (
    cleanup_distributed,
    get_logger,
    log_run_header,
    seed_everything,
    setup_distributed,
)

LOG = get_logger("petal")
META = "source.json"


def _source_meta(args) -> dict:
    return {
        "dataset": args.dataset,
        "n_train": args.n_train,
        "seed": args.seed,
        "steps": args.steps,
        "widths": list(args.widths),
    }


def train_embedded(args) -> Path:
    """Train the source BN-CNN (data parallel under torchrun), then fit its SWAG posterior."""
    dist = setup_distributed(args.device)
    try:
        seed_everything(args.seed, deterministic=args.deterministic)
        torch.set_num_threads(1)
        meta = _source_meta(args)
        log_run_header(LOG, package="petal", config=meta, seed=args.seed, device=dist.device)
        data = load_source(args.dataset, n_train=args.n_train, n_test=384, seed=args.seed)
        model = SmallBNCNN(num_classes=10, widths=tuple(args.widths)).to(dist.device)
        data.train_x, data.train_y = data.train_x.to(dist.device), data.train_y.to(dist.device)
        epochs = -(-args.steps * 64 // len(data.train_x))
        cfg = SourceConfig(epochs=epochs, flip=args.dataset != "digits")
        train_source(
            model,
            data.train_x,
            data.train_y,
            cfg,
            seed=args.seed,
            rank=dist.rank,
            world=dist.world_size,
        )
        out = Path(args.out)
        if dist.is_main:
            model = model.cpu()
            data.train_x, data.train_y = data.train_x.cpu(), data.train_y.cpu()
            model.save_pretrained(out / "model")
            with torch.no_grad():
                error = float((model(data.test_x).argmax(1) != data.test_y).float().mean())
            meta.update(clean_test_error=error, p_th=confidence_threshold(model, data.holdout_x))
            atomic_write_json(out / META, meta)
            LOG.info("source model saved to %s (clean test error %.4f)", out, error)
            swag_embedded(args, model=model, data=data)
        return out
    finally:
        cleanup_distributed()


def swag_embedded(args, model=None, data=None) -> Path:
    """Fit the SWAG-diagonal posterior of the `petal train` model; save mean and variance."""
    src = Path(getattr(args, "model", args.out))
    out = Path(args.out)
    if model is None:
        meta = _read_meta(src)
        model = SmallBNCNN.from_pretrained(src / "model")
        data = load_source(meta["dataset"], n_train=meta["n_train"], n_test=384, seed=meta["seed"])
    mean_model, posterior, count = fit_swag_diagonal(
        model, data.train_x, data.train_y, SourceConfig(swa_lr=EMBEDDED_SWA_LR), seed=args.seed
    )
    mean_model.save_pretrained(out / "swag_mean")
    save_file(
        {f"var.{n}": v.contiguous() for n, v in zip(posterior.names, posterior.var(), strict=True)},
        str(out / "swag_var.safetensors"),
    )
    LOG.info("SWAG posterior (%d snapshots) saved to %s", count, out)
    return out


def _read_meta(folder: Path) -> dict:
    path = folder / META
    if not path.is_file():
        raise CheckpointError(
            f"no source model at {folder} (expected {META} and model/); "
            "run `petal train --out FOLDER` first"
        )
    return json.loads(path.read_text())


def load_embedded_source(folder: str | Path):
    """The trained source model, SWAG mean model, posterior and metadata of `petal train`."""
    folder = Path(folder)
    meta = _read_meta(folder)
    var_path = folder / "swag_var.safetensors"
    if not var_path.is_file():
        raise CheckpointError(f"no SWAG posterior at {var_path}; run `petal swag` first")
    model = SmallBNCNN.from_pretrained(folder / "model")
    mean_model = SmallBNCNN.from_pretrained(folder / "swag_mean")
    var = {k.removeprefix("var."): v for k, v in load_file(str(var_path)).items()}
    mean = dict(mean_model.named_parameters())
    if set(var) != set(mean):
        raise CheckpointError(f"{var_path} does not match the model in {folder}; refit SWAG")
    posterior = Posterior({n: p.detach() for n, p in mean.items()}, var)
    return model, mean_model, posterior, meta


def adapt_embedded(args, cfg: AdaptConfig) -> StreamResult:
    """One method over the embedded stream (15 corruptions, severity 5, standard order)."""
    model, mean_model, posterior, meta = load_embedded_source(args.source)
    data = load_source(
        meta["dataset"], n_train=meta["n_train"], n_test=args.n_test, seed=meta["seed"]
    )
    domains = build_stream(data.test_x, data.test_y, CORRUPTIONS, 5, seed=args.seed)
    start = mean_model if cfg.method.startswith("petal") else model
    adapter = build_adapter(start, cfg, seed=args.seed, posterior=posterior)
    return run_stream(
        adapter,
        domains,
        cfg.batch_size,
        checkpoint=Path(args.out) / "state",
        checkpoint_every=args.checkpoint_every,
        config={"method": cfg.method, "seed": args.seed, "source": str(args.source)},
        desc=cfg.method,
    )
