"""Training loops: base-model pretraining, positive / negative SFT, preference optimisation.

All loops run unchanged under ``torchrun --nproc-per-node N``: each process takes a strided
shard of every global batch and DistributedDataParallel averages the gradients.
"""

from __future__ import annotations

import copy
import math
import random

import torch
from torch.nn.parallel import DistributedDataParallel

from reprozoo.checkpoint import load_training_state, save_training_state
from reprozoo.runtime import Distributed, get_logger, progress

from . import __version__
from . import losses as L

log = get_logger("cdpo")


def layout(prompts, responses, pad_id, values=None):
    """Right-padded ``prompt + response`` batch: ``ids, attention, mask[, vals]``.

    ``mask`` and ``vals`` are in the shifted layout ``(B, L-1)``: entry j describes token j+1;
    ``values[i]`` has one number per response token of pair i.
    """
    seqs = [p + r for p, r in zip(prompts, responses, strict=True)]
    Lmax = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), Lmax), pad_id, dtype=torch.long)
    att = torch.zeros_like(ids)
    mask = torch.zeros((len(seqs), Lmax - 1))
    vals = torch.zeros((len(seqs), Lmax - 1)) if values is not None else None
    for i, (p, s) in enumerate(zip(prompts, seqs, strict=True)):
        ids[i, : len(s)] = torch.tensor(s)
        att[i, : len(s)] = 1
        mask[i, len(p) - 1 : len(s) - 1] = 1
        if values is not None:
            if len(values[i]) != len(s) - len(p):
                raise ValueError(
                    f"pair {i}: {len(values[i])} weights for {len(s) - len(p)} response tokens"
                )
            vals[i, len(p) - 1 : len(s) - 1] = torch.tensor(values[i], dtype=torch.float)
    return (ids, att, mask, vals) if values is not None else (ids, att, mask)


def warmup_schedule(opt, warmup: int, total: int, kind: str = "cosine"):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(warmup, 1)
        frac = (step - warmup) / max(total - warmup, 1)
        return 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))) if kind == "cosine" else 1 - frac

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _shard(items, dist: Distributed | None):
    if dist is None or dist.world_size == 1:
        return items
    return items[dist.rank :: dist.world_size]


def _wrap(model, dist: Distributed | None):
    if dist is not None and dist.world_size > 1:
        return DistributedDataParallel(model)
    return model


def completion_loss(model, prompts, responses, pad_id):
    """Mean next-token NLL over response tokens only (the prompt is masked, spec 1.5)."""
    ids, att, mask = layout(prompts, responses, pad_id)
    logits = model(input_ids=ids, attention_mask=att).logits
    return -(L.token_logps(logits, ids) * mask).sum() / mask.sum().clamp(min=1)


def pretrain(model, task, cfg, ckpt_dir, dist=None, save_every: int = 100):
    """Next-token training on the noisy corpus stream, resumable from ``ckpt_dir``.

    Batch ``k`` is drawn from its own seeded generator, so a resumed run sees the same data.
    """
    net = _wrap(model, dist)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.pretrain_lr, weight_decay=0.01)
    sched = warmup_schedule(opt, cfg.pretrain_warmup, cfg.pretrain_steps)
    step, config = 0, {"stage": "pretrain", **task.fingerprint(cfg)}
    if (ckpt_dir / "meta.json").exists():
        step, _ = load_training_state(
            ckpt_dir,
            package="cdpo",
            config=config,
            modules={"model": model},
            optimizers={"opt": opt},
            schedulers={"sched": sched},
        )
        log.info("resuming pretraining at step %d from %s", step, ckpt_dir)
    model.train()
    bar = progress(
        range(step, cfg.pretrain_steps), desc="pretrain", initial=step, total=cfg.pretrain_steps
    )
    for k in bar:
        prompts, responses = task.corpus_batch(random.Random(f"{cfg.seed}-{k}"), cfg.pretrain_batch)
        prompts, responses = _shard(prompts, dist), _shard(responses, dist)
        loss = completion_loss(net, prompts, responses, task.pad_id)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if (k + 1) % save_every == 0 and (dist is None or dist.is_main):
            save_training_state(
                ckpt_dir,
                package="cdpo",
                version=__version__,
                config=config,
                step=k + 1,
                modules={"model": model},
                optimizers={"opt": opt},
                schedulers={"sched": sched},
            )
    return model


def sft(model, examples, cfg, pad_id: int, seed: int, desc: str, dist=None):
    """Completion-only fine-tuning on ``(prompt, response)`` pairs; the last ``holdout`` share
    is held out and the epoch with the lowest held-out loss is kept (spec 1.5)."""
    n_val = int(len(examples) * cfg.holdout) if len(examples) >= 10 else 0
    train, val = examples[: len(examples) - n_val], examples[len(examples) - n_val :]
    net = _wrap(model, dist)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.posneg_lr, weight_decay=0.0)
    steps = cfg.posneg_epochs * math.ceil(len(train) / cfg.posneg_batch)
    sched = warmup_schedule(opt, min(100, steps // 10), steps)
    rng = random.Random(seed)
    best, best_loss = None, float("inf")
    for _ in progress(range(cfg.posneg_epochs), desc=desc):
        model.train()
        order = list(range(len(train)))
        rng.shuffle(order)
        for b in range(0, len(order), cfg.posneg_batch):
            batch = _shard([train[i] for i in order[b : b + cfg.posneg_batch]], dist)
            loss = completion_loss(net, [e[0] for e in batch], [e[1] for e in batch], pad_id)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        if val:
            model.eval()
            with torch.no_grad():
                v = completion_loss(model, [e[0] for e in val], [e[1] for e in val], pad_id)
            if v.item() < best_loss:
                best_loss, best = v.item(), copy.deepcopy(model.state_dict())
    if best is not None:
        model.load_state_dict(best)
    return model


@torch.no_grad()
def response_logps(model, prompts, responses, pad_id, batch: int = 128):
    """Per-token log-probabilities of each response (one list per sequence)."""
    model.eval()
    out = []
    for b in range(0, len(prompts), batch):
        P, R = prompts[b : b + batch], responses[b : b + batch]
        ids, att, mask = layout(P, R, pad_id)
        lp = L.token_logps(model(input_ids=ids, attention_mask=att).logits, ids)
        for i, (p, r) in enumerate(zip(P, R, strict=True)):
            out.append(lp[i, len(p) - 1 : len(p) - 1 + len(r)].tolist())
    return out
