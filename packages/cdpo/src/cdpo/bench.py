"""`cdpo bench`: training-step cost of cDPO against DPO on the same batch, and sampling
throughput with the KV cache against recomputing the whole prefix at every step."""

from __future__ import annotations

import copy
import random

import torch

from reprozoo.bench import ratio_table, time_call

from .config import profile
from .model import tiny_llama
from .preference import attach_reference, batch_loss
from .sampling import sample
from .task import ArithTask


def _pairs(task, n: int, seed: int = 0) -> list[dict]:
    """Pairs of two noisy corpus solutions with random scores, shaped like the real data."""
    rng = random.Random(seed)
    out = []
    prompts, chosen = task.corpus_batch(rng, n)
    _, rejected = task.corpus_batch(rng, n)
    for p, c, r in zip(prompts, chosen, rejected, strict=True):
        out.append(
            {
                "prompt": p,
                "chosen": c,
                "rejected": r,
                "s_chosen": [rng.random() for _ in c],
                "s_rejected": [rng.random() for _ in r],
                "oracle": [0.0] * (len(r) - 1) + [1.0],
            }
        )
    return out


@torch.no_grad()
def _uncached_greedy(model, prompts, eos_id, pad_id, max_new_tokens):
    """Baseline sampler: a full forward pass over the whole sequence at every step."""
    out = []
    for p in prompts:
        ids = list(p)
        for _ in range(max_new_tokens):
            nxt = int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
            ids.append(nxt)
            if nxt == eos_id:
                break
        out.append(ids[len(p) :])
    return out


def bench(repeats: int = 5, batch: int = 16, n_seqs: int = 64) -> str:
    cfg = profile("default")
    task = ArithTask(profile("quick"))
    model = tiny_llama(cfg, len(task.tok), task.pad_id, task.bos_id, task.eos_id)
    pairs = _pairs(task, batch)
    policy = copy.deepcopy(model).train()
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-4)

    # Reference log-probabilities are computed once, before training, for every method.
    ref_time = time_call(lambda: attach_reference(pairs, model, task.pad_id), repeats=repeats)

    def step(method):
        def run():
            loss, _ = batch_loss(method, cfg, policy, pairs, task.pad_id)
            opt.zero_grad(set_to_none=True)
            loss.backward()

        return run

    steps = {
        f"{m} step": time_call(step(m), repeats=repeats)
        for m in ("dpo", "cdpo_seq", "cdpo_code", "rpo")
    }
    ref = copy.deepcopy(model).eval().requires_grad_(False)

    def tdpo():
        loss, _ = batch_loss("tdpo", cfg, policy, pairs, task.pad_id, ref)
        opt.zero_grad(set_to_none=True)
        loss.backward()

    steps["tdpo step (reference forward inside)"] = time_call(tdpo, repeats=repeats)
    steps["reference log-probs (once per run)"] = ref_time
    lines = [
        f"training step on {batch} pairs (seconds, lower is faster)",
        ratio_table(steps, "dpo step", "s/step", higher_is_better=False),
    ]

    prompts = [task.prompt(q) for q in task.test[:n_seqs]]
    kw = dict(eos_id=task.eos_id, pad_id=task.pad_id, max_new_tokens=cfg.max_new_tokens)
    t_cached = time_call(lambda: sample(model, prompts, temperature=0, **kw), repeats=repeats)
    few = prompts[: max(4, n_seqs // 8)]
    t_plain = time_call(
        lambda: _uncached_greedy(model, few, **kw), warmup=0, repeats=max(1, repeats // 2)
    )
    speed = {
        "KV-cache batched sampler": len(prompts) / t_cached,
        "no cache, one sequence at a time": len(few) / t_plain,
    }
    lines += [
        "",
        f"greedy sampling, {cfg.max_new_tokens} new tokens (sequences per second)",
        ratio_table(speed, "no cache, one sequence at a time", "seq/s"),
    ]
    return "\n".join(lines)
