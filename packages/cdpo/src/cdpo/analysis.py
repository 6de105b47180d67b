"""Critical-token analyses on a finished pipeline (spec 6.5, 7.3): how well contrastive
estimation finds the ground-truth first error, and the rollout experiment of spec 1.9."""

from __future__ import annotations

import math

import numpy as np
import torch

from reprozoo.runtime import get_logger, progress

from .ce import detection_metrics, score_sequences
from .rollout import pass_curve, rollout_trajectory
from .train import response_logps

log = get_logger("cdpo")

GAMMAS = (0.0, 0.5, 1.0, 2.0)


def pass_ks(n: int) -> list[int]:
    return [2**i for i in range(int(math.log2(n)) + 1)]


def detection(pipe) -> dict:
    """Detection quality of several per-token critical scores on the rejected responses."""
    t, pairs, sc = pipe.task, pipe.selection()["pairs"], pipe.scores()
    keep = [
        i
        for i, p in enumerate(pairs)
        if sc["truth"][i][0] is not None and sc["truth"][i][0] < len(p["rejected"]) - 1
    ]
    if not keep:
        return {"n": 0, "skipped": len(pairs)}
    prompts = [t.prompt(t.train[pairs[i]["q"]]) for i in keep]
    rejected = [pairs[i]["rejected"] for i in keep]
    truth = [sc["truth"][i][0] for i in keep]
    kinds = [sc["truth"][i][1] for i in keep]
    seqs = [p + r for p, r in zip(prompts, rejected, strict=True)]
    starts = [len(p) for p in prompts]
    pos, neg, base = pipe.posneg("pos"), pipe.posneg("neg"), pipe.base()

    def body(ws):  # drop EOS: the critical token is a content token
        return [w[:-1] for w in ws]

    scores = {}
    for g in GAMMAS:
        s = score_sequences(pos, neg, seqs, starts, g, t.pad_id)
        scores[f"cdpo weight 1-s (gamma={g:g})"] = body([[1 - x for x in r] for r in s])
    lp_base = response_logps(base, prompts, rejected, t.pad_id)
    lp_pos = response_logps(pos, prompts, rejected, t.pad_id)
    lp_neg = response_logps(neg, prompts, rejected, t.pad_id)
    rng = np.random.default_rng(pipe.cfg.seed)
    scores["random token"] = body([rng.random(len(r)).tolist() for r in rejected])
    scores["base confidence 1-p_base"] = body([[1 - math.exp(x) for x in r] for r in lp_base])
    scores["negative-only p_neg"] = body([[math.exp(x) for x in r] for r in lp_neg])
    scores["log-ratio sigmoid(-r)"] = body(
        [
            [1 / (1 + math.exp(a - b)) for a, b in zip(rp, rn, strict=True)]
            for rp, rn in zip(lp_pos, lp_neg, strict=True)
        ]
    )
    out = {"n": len(keep), "skipped": len(pairs) - len(keep), "scores": {}, "by_kind": {}}
    for name, ws in scores.items():
        out["scores"][name] = detection_metrics(ws, truth)
    main = scores["cdpo weight 1-s (gamma=1)"]
    for kind in sorted(set(kinds)):
        idx = [i for i, k in enumerate(kinds) if k == kind]
        out["by_kind"][kind] = {
            "n": len(idx),
            "cdpo": detection_metrics([main[i] for i in idx], [truth[i] for i in idx]),
            "random": detection_metrics(
                [scores["random token"][i] for i in idx], [truth[i] for i in idx]
            ),
            "confidence": detection_metrics(
                [scores["base confidence 1-p_base"][i] for i in idx], [truth[i] for i in idx]
            ),
        }
    return out


def rollouts(pipe) -> dict:
    """Spec 1.9 on the rejected responses of the first ``n_rollout`` pairs, with the base model."""
    cfg, t = pipe.cfg, pipe.task
    pairs, sc = pipe.selection()["pairs"][: cfg.n_rollout], pipe.scores()
    base = pipe.base()
    gen = torch.Generator().manual_seed(cfg.seed + 7)
    rows = []
    for i, p in enumerate(progress(pairs, desc="rollouts")):
        q = t.train[p["q"]]
        response = p["rejected"][:-1] if p["rejected"][-1] == t.eos_id else p["rejected"]
        res = rollout_trajectory(
            base,
            t.prompt(q),
            response,
            lambda ids, q=q: t.grade(q, ids)[1],
            n_with=cfg.n_with,
            n_without=cfg.n_without,
            reset_above=cfg.reset_above,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            max_new_tokens=cfg.max_new_tokens,
            eos_id=t.eos_id,
            pad_id=t.pad_id,
            generator=gen,
        )
        s = sc["s_rejected"][i][: len(response)]
        res["ce_argmin"] = int(np.argmin(s)) if s else None
        res["truth"], res["kind"] = sc["truth"][i]
        rows.append(res)
    found = [r for r in rows if r["critical"] is not None]
    n_k = min(cfg.n_with, cfg.n_without)
    ks = pass_ks(n_k)
    out = {"n": len(rows), "found": len(found), "ks": ks, "rows": rows}
    if found:
        out["pass_with"] = pass_curve([r["with"] for r in found], cfg.n_with, ks)
        out["pass_without"] = pass_curve([r["without"] for r in found], cfg.n_without, ks)
        out["match_truth"] = float(np.mean([r["critical"] == r["truth"] for r in found]))
        out["match_ce"] = float(np.mean([r["critical"] == r["ce_argmin"] for r in found]))
        out["ce_match_truth"] = float(np.mean([r["ce_argmin"] == r["truth"] for r in rows]))
    return out
