"""Training loop: one file, top to bottom; runs unchanged under `torchrun`.

    radd train --loss lambda_dce --steps 400 --out runs/radd
    torchrun --nproc-per-node 2 -m radd.cli train --loss lambda_dce --out runs/radd-ddp

All randomness of step n (batch indices and the loss's noise) comes from a generator seeded
with (seed, n) and is drawn for the global batch; each process scores its slice. So a run on
N processes follows the 1-process run with the same global batch, and a resumed run
reproduces the uninterrupted loss curve.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from radd import __version__
from radd.config import TrainConfig
from radd.data import MarkovChain, pydoc_corpus
from radd.losses import draw_noise, training_loss
from radd.model import build_model
from radd.schedule import make_schedule
from reprozoo.checkpoint import load_training_state, save_pretrained_atomic, save_training_state
from reprozoo.config import ConfigError, config_to_dict
from reprozoo.runtime import (
    all_reduce_mean,
    barrier,
    get_logger,
    log_run_header,
    progress,
    setup_distributed,
)

log = get_logger("radd")
MARKOV_SEED = 0  # the Markov corpus (chain and sequences) is fixed across training seeds
MARKOV_VALID = 512


def load_corpus(cfg: TrainConfig, data_root=None) -> dict:
    """{'train', 'valid': token tensors or packed datasets, 'vocab_size', 'meta'}."""
    if cfg.corpus == "pydoc":
        corpus = pydoc_corpus(cfg.length)
        meta = {"sha256": corpus["sha256"], "n_bytes": corpus["n_bytes"]}
        return {"train": corpus["train"], "valid": corpus["valid"], "vocab_size": 257, "meta": meta}
    if cfg.corpus == "markov":
        chain = MarkovChain(cfg.markov_vocab, seed=MARKOV_SEED)
        train = chain.sample(cfg.markov_sequences, cfg.length, _generator(MARKOV_SEED, 1))
        valid = chain.sample(MARKOV_VALID, cfg.length, _generator(MARKOV_SEED, 2))
        meta = {"entropy_nats_per_seq": chain.entropy(cfg.length)}
        return {
            "train": train,
            "valid": valid,
            "vocab_size": cfg.markov_vocab,
            "chain": chain,
            "meta": meta,
        }
    from radd.paper_data import load_training_corpus

    return load_training_corpus(cfg, data_root)


def _generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def _ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float, n: int) -> None:
    # EMA with the warm-up min(decay, (1 + n) / (10 + n)) of the official code.
    d = min(decay, (1 + n) / (10 + n))
    with torch.no_grad():
        for pe, p in zip(ema.parameters(), model.parameters(), strict=True):
            pe.mul_(d).add_(p.detach(), alpha=1 - d)


def _lr_lambda(warmup: int):
    return lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0


def train(
    cfg: TrainConfig,
    seed: int,
    out: str | Path,
    *,
    device: str = "cpu",
    resume: bool = False,
    corpus: dict | None = None,
    stop_after: int | None = None,
    max_seconds: float | None = None,
    quiet: bool = False,
) -> dict:
    """Train one model; returns {'model': EMA model, 'history': per-step losses, ...}.

    `stop_after` ends the run early (after a checkpoint) as if it had been interrupted;
    `max_seconds` is a wall-clock cap. Neither is part of the config.
    """
    dist = setup_distributed(device)
    out = Path(out)
    corpus = corpus if corpus is not None else load_corpus(cfg)
    x_train = corpus["train"]
    if len(x_train) == 0:
        raise ConfigError("the training corpus is empty; nothing to train on")
    if cfg.batch_size % dist.world_size:
        raise ConfigError(
            f"--batch-size {cfg.batch_size} must divide evenly over {dist.world_size} processes"
        )
    run_config = {**config_to_dict(cfg), "seed": seed}
    if not quiet:
        log_run_header(log, package="radd", config=run_config, seed=seed, device=dist.device)

    torch.manual_seed(seed)
    model = build_model(cfg.model_size, corpus["vocab_size"], cfg.length, cfg.time_conditioned)
    model.to(dist.device)
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(
        model.parameters(),
        lr=cfg.lr,
        betas=(cfg.beta1, cfg.beta2),
        eps=cfg.adam_eps,
        weight_decay=cfg.weight_decay,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg.warmup))
    schedule = make_schedule(cfg.schedule)

    start, history = 0, []
    ckpt = out / "checkpoint"
    if resume and (ckpt / "meta.json").exists():
        start, extra = load_training_state(
            ckpt,
            package="radd",
            config=run_config,
            modules={"model": model, "ema": ema},
            optimizers={"opt": opt},
            schedulers={"sched": sched},
        )
        history = list(extra["history"])
        log.info("resumed from %s at step %d", ckpt, start)
    net = DistributedDataParallel(model) if dist.enabled else model

    def save(step: int) -> None:
        if dist.is_main:
            save_training_state(
                ckpt,
                package="radd",
                version=__version__,
                config=run_config,
                step=step,
                modules={"model": model, "ema": ema},
                optimizers={"opt": opt},
                schedulers={"sched": sched},
                extra={"history": history},
            )
        barrier()

    local = slice(
        dist.rank * cfg.batch_size // dist.world_size,
        (dist.rank + 1) * cfg.batch_size // dist.world_size,
    )
    began = time.time()
    bar = progress(range(start, cfg.steps), desc=f"train {cfg.loss}", disable=quiet)
    step = start
    for step in bar:
        # 1. The global batch and its noise, from the step's own generator.
        g = _generator(seed, step)
        idx = torch.randint(0, len(x_train), (cfg.batch_size,), generator=g)
        noise = draw_noise(
            cfg.loss, cfg.batch_size, cfg.length, g, cfg.time_sampler, cfg.sampling_eps
        )
        x0 = torch.as_tensor(x_train[idx[local]]).to(dist.device)

        # 2. This process's slice of the bound; DDP averages the gradients.
        loss = training_loss(net, x0, noise[local], cfg.loss, schedule, cfg.sampling_eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        _ema_update(ema, model, cfg.ema, step)

        history.append(all_reduce_mean(loss.detach()).item())
        bar.set_postfix(loss=f"{history[-1] / cfg.length:.3f}/tok")
        done = step + 1
        if cfg.checkpoint_every and done % cfg.checkpoint_every == 0:
            save(done)
        if stop_after is not None and done >= stop_after:
            save(done)
            break
        if max_seconds is not None and time.time() - began > max_seconds:
            log.info("time cap of %.0f s reached after %d steps", max_seconds, done)
            save(done)
            break
    else:
        step = cfg.steps - 1
        save(cfg.steps)

    if dist.is_main and not quiet:
        save_pretrained_atomic(ema, out / "model")
    return {
        "model": ema.eval(),
        "history": history,
        "steps": step + 1,
        "dist": dist,
        "seconds": time.time() - began,
    }
