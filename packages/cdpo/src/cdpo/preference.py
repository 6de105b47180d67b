"""The preference stage (spec 1.7, 2, 6.3 step 6): one loop for SFT, DPO, RPO, TDPO and cDPO.

The policy and the reference both start from the base model. Reference log-probabilities are
computed once before training (``attach_reference``); TDPO alone needs the reference's full
next-token distributions and runs the reference forward pass inside the step.
"""

from __future__ import annotations

import copy
import math
import random
from contextlib import nullcontext

import torch

from reprozoo.runtime import get_logger, progress

from . import losses as L
from .train import _shard, _wrap, layout, response_logps, warmup_schedule

log = get_logger("cdpo")


def attach_reference(pairs: list[dict], ref_model, pad_id: int) -> None:
    """Store π_ref's per-token log-probabilities of both responses in every pair (once)."""
    prompts = [p["prompt"] for p in pairs]
    for key in ("chosen", "rejected"):
        lps = response_logps(ref_model, prompts, [p[key] for p in pairs], pad_id)
        for p, lp in zip(pairs, lps, strict=True):
            p[f"ref_{key}"] = lp


def pair_weights(pair: dict, method: str, only_neg: bool) -> tuple[list, list]:
    """(chosen weights, rejected weights) for one pair (spec 1.7 table); EOS keeps weight 1."""
    n_w, n_l = len(pair["chosen"]), len(pair["rejected"])
    if method == "oracle":
        return [1.0] * n_w, pair["oracle"]
    if method == "cdpo_shuffled":
        # Control (spec 6.6): the same weights in a random order within the response.
        w_l = [1.0 - s for s in pair["s_rejected"][: n_l - 1]]
        random.Random(sum(pair["rejected"]) * 1009 + n_l).shuffle(w_l)
        return [1.0] * n_w, w_l + [1.0]
    if method in ("cdpo_seq", "cdpo_code"):
        w_l = [1.0 - s for s in pair["s_rejected"][: n_l - 1]] + [1.0]
        w_w = [1.0] * n_w if only_neg else pair["s_chosen"][: n_w - 1] + [1.0]
        return w_w, w_l
    return [1.0] * n_w, [1.0] * n_l


def batch_loss(method: str, cfg, net, batch: list[dict], pad_id: int, ref_model=None):
    """The loss of one batch of pairs and the policy's mean chosen / rejected sequence logps."""
    B = len(batch)
    prompts = [p["prompt"] for p in batch] * 2
    responses = [p["chosen"] for p in batch] + [p["rejected"] for p in batch]
    refs = [p["ref_chosen"] for p in batch] + [p["ref_rejected"] for p in batch]
    weights = [pair_weights(p, method, cfg.only_neg) for p in batch]
    weights = [w[0] for w in weights] + [w[1] for w in weights]
    ids, att, mask, ref = layout(prompts, responses, pad_id, values=refs)
    wts = layout(prompts, responses, pad_id, values=weights)[3]
    logits = net(input_ids=ids, attention_mask=att).logits
    lp = L.token_logps(logits, ids)
    pi_w, pi_l, ref_w, ref_l = lp[:B], lp[B:], ref[:B], ref[B:]
    m_w, m_l, w_w, w_l = mask[:B], mask[B:], wts[:B], wts[B:]
    beta = cfg.beta
    if method == "sft":
        loss = L.sft_loss(pi_w, m_w)
    elif method == "dpo":
        loss = L.dpo_loss(pi_w, ref_w, pi_l, ref_l, m_w, m_l, beta)
    elif method == "rpo":
        loss = L.rpo_loss(pi_w, ref_w, pi_l, ref_l, m_w, m_l, beta, cfg.rpo_alpha)
    elif method == "tdpo":
        with torch.no_grad(), _reference(net, ref_model) as ref_net:
            ref_logits = ref_net(input_ids=ids, attention_mask=att).logits
        kl = L.sequential_kl(ref_logits, logits, mask)
        loss = L.tdpo_loss(pi_w, ref_w, pi_l, ref_l, m_w, m_l, kl[:B], kl[B:], beta, cfg.tdpo_alpha)
    elif method in ("cdpo_seq", "oracle", "cdpo_shuffled"):
        loss = L.cdpo_seq_loss(pi_w, ref_w, pi_l, ref_l, m_w, m_l, w_w, w_l, beta)
    elif method == "cdpo_code":
        loss = L.cdpo_code_loss(pi_w, ref_w, pi_l, ref_l, m_w, m_l, w_w, w_l, beta)
    else:
        raise ValueError(f"unknown method {method!r}; choose from {L.METHODS}")
    with torch.no_grad():
        stats = ((pi_w * m_w).sum(-1).mean().item(), (pi_l * m_l).sum(-1).mean().item())
    return loss, stats


def _reference(net, ref_model):
    """The reference network: a frozen copy, or the peft policy with its adapter switched off."""
    if ref_model is not None:
        return nullcontext(ref_model)
    inner = net.module if hasattr(net, "module") and not hasattr(net, "disable_adapter") else net

    class _Off:
        def __enter__(self):
            self.ctx = inner.disable_adapter()
            self.ctx.__enter__()
            return inner

        def __exit__(self, *exc):
            return self.ctx.__exit__(*exc)

    return _Off()


def train_preference(
    base_model,
    pairs: list[dict],
    method: str,
    cfg,
    seed: int,
    pad_id: int,
    dist=None,
    use_lora: bool = False,
):
    """Train one policy from ``base_model`` with ``method``; returns (policy, history).

    The pair order depends only on ``cfg.shuffle_seed`` and ``seed``, so every method of a seed
    sees the same batches. ``history`` holds the chosen / rejected sequence log-probs per step
    (the spec's Figure 6 dynamics).
    """
    torch.manual_seed(seed)
    policy = copy.deepcopy(base_model)
    if not pairs:
        log.warning("%s: no preference pairs, the policy stays the base model", method)
        return policy.eval(), {"chosen": [], "rejected": [], "loss": []}
    ref_model = None
    if use_lora:
        from .model import PREF_TARGETS, add_lora

        policy = add_lora(policy, cfg.pref_lora_r, cfg.pref_lora_alpha, 0.0, PREF_TARGETS)
    elif method == "tdpo":
        ref_model = copy.deepcopy(base_model).eval().requires_grad_(False)
    net = _wrap(policy, dist)
    params = [p for p in policy.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.pref_lr, weight_decay=cfg.weight_decay)
    per_epoch = math.ceil(len(pairs) / cfg.pref_batch)
    total = cfg.pref_epochs * per_epoch
    sched = warmup_schedule(opt, int(cfg.warmup_ratio * total), total, kind="linear")
    rng = random.Random(f"{cfg.shuffle_seed}-{seed}")
    history = {"chosen": [], "rejected": [], "loss": []}
    policy.train()
    bar = progress(total=total, desc=f"{method} seed {seed}")
    for _ in range(cfg.pref_epochs):
        order = list(range(len(pairs)))
        rng.shuffle(order)
        for b in range(0, len(order), cfg.pref_batch):
            batch = _shard([pairs[i] for i in order[b : b + cfg.pref_batch]], dist)
            loss, (lw, ll) = batch_loss(method, cfg, net, batch, pad_id, ref_model)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{method}: non-finite loss {loss.item()} (seed {seed})")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            history["loss"].append(loss.item())
            history["chosen"].append(lw)
            history["rejected"].append(ll)
            bar.update(1)
    bar.close()
    policy.eval()
    if use_lora:
        policy = policy.merge_and_unload()
    return policy, history
