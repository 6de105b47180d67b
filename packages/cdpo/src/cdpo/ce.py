"""Contrastive estimation of critical tokens (spec 1.6) and detection metrics (spec 6.5).

| symbol | meaning |
|---|---|
| ``z_pos, z_neg`` | next-token logits z⁺_t, z⁻_t of the positive / negative model, ``(..., V)`` |
| ``y`` | the token actually written at each position |
| ``γ`` | contrast strength (1 in the released code: softmax(2·z⁺ − z⁻)) |
| ``q_t`` | contrastive distribution softmax((1+γ) z⁺_t − γ z⁻_t) |
| ``s_t`` | score q_t(y_t) ∈ (0, 1); low means "the negative model's token" |
| ``r_t`` | plain log-likelihood ratio log p⁺(y_t) − log p⁻(y_t) |
"""

from __future__ import annotations

import numpy as np
import torch


def contrastive_log_q(z_pos: torch.Tensor, z_neg: torch.Tensor, gamma: float = 1.0):
    """log q_t over the vocabulary. Logits or log-probabilities give the same result, since a
    per-position constant cancels in the softmax."""
    return ((1 + gamma) * z_pos.float() - gamma * z_neg.float()).log_softmax(-1)


def contrastive_scores(z_pos, z_neg, y: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """s_t = q_t(y_t) (spec 1.6)."""
    log_q = contrastive_log_q(z_pos, z_neg, gamma)
    return log_q.gather(-1, y[..., None]).squeeze(-1).exp()


def log_ratio(z_pos, z_neg, y: torch.Tensor) -> torch.Tensor:
    """r_t = log p⁺(y_t) − log p⁻(y_t); exactly 0 wherever the two models agree."""
    lp = z_pos.float().log_softmax(-1).gather(-1, y[..., None]).squeeze(-1)
    ln = z_neg.float().log_softmax(-1).gather(-1, y[..., None]).squeeze(-1)
    return lp - ln


@torch.no_grad()
def score_sequences(pos_model, neg_model, seqs: list[list[int]], starts: list[int], gamma, pad_id):
    """Scores of the response tokens of each ``prompt + response`` id list.

    ``starts[i]`` is the index of the first response token in ``seqs[i]``; the result holds one
    score per response token (EOS included), computed from one forward pass of each model over
    the whole sequence, exactly the ids that the preference stage trains on.
    """
    out = []
    batch = 256
    for b in range(0, len(seqs), batch):
        chunk, st = seqs[b : b + batch], starts[b : b + batch]
        L = max(len(s) for s in chunk)
        ids = torch.full((len(chunk), L), pad_id, dtype=torch.long)
        att = torch.zeros_like(ids)
        for i, s in enumerate(chunk):
            ids[i, : len(s)] = torch.tensor(s)
            att[i, : len(s)] = 1
        z_pos = pos_model(input_ids=ids, attention_mask=att).logits[:, :-1]
        z_neg = neg_model(input_ids=ids, attention_mask=att).logits[:, :-1]
        s = contrastive_scores(z_pos, z_neg, ids[:, 1:], gamma)
        for i, seq in enumerate(chunk):
            out.append(s[i, st[i] - 1 : len(seq) - 1].tolist())
    return out


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with tie correction); NaN without both classes."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def detection_metrics(weights: list[list[float]], truth: list[int], thresholds=(0.5, 0.8)):
    """How well per-token weights w_t (high = critical) find the true first-error token.

    ``weights[i]`` covers the response tokens of trajectory i and ``truth[i]`` indexes the
    ground-truth critical token in it. Returns the top-1 hit rate of arg-max w, recall@3,
    the pooled AUROC, and precision / recall of ``w > threshold``.
    """
    hits, hits3, all_w, all_y = 0, 0, [], []
    tp = {t: 0 for t in thresholds}
    flagged = {t: 0 for t in thresholds}
    for w, k in zip(weights, truth, strict=True):
        w = np.asarray(w, float)
        order = np.argsort(-w, kind="mergesort")
        hits += int(order[0] == k)
        hits3 += int(k in order[:3])
        y = np.zeros(len(w), bool)
        y[k] = True
        all_w.append(w)
        all_y.append(y)
        for t in thresholds:
            flagged[t] += int((w > t).sum())
            tp[t] += int(w[k] > t)
    n = max(len(truth), 1)
    res = {"top1": hits / n, "recall@3": hits3 / n, "n": len(truth)}
    res["auroc"] = auroc(np.concatenate(all_w), np.concatenate(all_y)) if all_w else float("nan")
    for t in thresholds:
        res[f"precision@{t}"] = tp[t] / flagged[t] if flagged[t] else float("nan")
        res[f"recall@{t}"] = tp[t] / n
    return res
