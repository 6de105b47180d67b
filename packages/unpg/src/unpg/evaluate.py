"""Verification protocols: all-pairs ROC (TAR@FAR), identity-disjoint 10-fold accuracy,
IJB-style template pooling and flip-sum embeddings."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from reprozoo.metrics import kfold_pair_accuracy, roc_curve, tar_at_far

FARS = (1e-3, 1e-4, 1e-5)


@torch.no_grad()
def embed(model, images: torch.Tensor, batch_size: int = 512, flip: bool = False) -> torch.Tensor:
    """L2-normalised embeddings; ``flip=True`` sums the original and mirrored embeddings
    (insightface convention) before normalising."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].to(device)
        e = model(x)
        if flip:
            e = e + model(torch.flip(x, dims=[3]))
        out.append(F.normalize(e.float(), dim=1).cpu())
    return torch.cat(out)


def all_pair_scores(emb: torch.Tensor, identity: torch.Tensor):
    """Scores and same-identity flags of every unordered pair (the IJB-like 1:1 protocol)."""
    sim = emb @ emb.t()
    iu = torch.triu_indices(len(emb), len(emb), offset=1)
    same = (identity[:, None] == identity[None, :])[iu[0], iu[1]]
    return sim[iu[0], iu[1]].numpy(), same.numpy()


def nearest_far_tar(scores, is_same, far: float) -> float:
    """The official UNPG reading: TAR at the ROC point whose FAR is nearest to ``far``."""
    fars, tars, _ = roc_curve(scores, is_same)
    return float(tars[np.argmin(np.abs(fars - far))])


def quantile_tar(scores, is_same, far: float) -> float:
    """TAR with the threshold at the (1 − far) quantile of the impostor scores."""
    scores, is_same = np.asarray(scores), np.asarray(is_same, dtype=bool)
    neg = np.sort(scores[~is_same])
    k = int(np.floor(far * len(neg)))  # at most k impostors may pass
    threshold = np.nextafter(neg[len(neg) - k - 1], np.inf) if k < len(neg) else -np.inf
    return float((scores[is_same] >= threshold).mean())


def verification_report(scores, is_same, fars=FARS) -> dict:
    """TAR at each FAR (largest TAR with FAR ≤ target) and the nearest-FAR reading."""
    curve_far, curve_tar, _ = roc_curve(scores, is_same)
    out = {}
    for far in fars:
        out[f"tar@{far:.0e}"] = float(curve_tar[curve_far <= far].max())
        out[f"tar_nearest@{far:.0e}"] = float(curve_tar[np.argmin(np.abs(curve_far - far))])
    return out


def roc_on_grid(scores, is_same, grid) -> list[float]:
    """TAR at each FAR of ``grid`` (for ROC figures averaged over seeds)."""
    curve_far, curve_tar, _ = roc_curve(scores, is_same)
    return [float(curve_tar[curve_far <= f].max()) for f in grid]


def kfold_pairs(
    identity,
    family,
    pose,
    seed: int,
    folds: int = 10,
    pairs_per_fold: int = 300,
    hard: bool = False,
):
    """LFW-style pairs in identity-disjoint folds.

    Identities are dealt to ``folds`` groups; inside a group, ``pairs_per_fold`` positive and as
    many negative pairs are drawn. ``hard=True`` (CPLFW-like) draws negatives among siblings of
    the same family and positives as the image pairs with the largest pose difference.
    Returns index arrays ``a, b``, the same-flags and the fold of each pair.
    """
    identity, family, pose = (np.asarray(v) for v in (identity, family, pose))
    rng = np.random.default_rng(seed)
    # Whole families go to one fold, so folds are identity-disjoint and siblings stay together.
    fams = np.array_split(rng.permutation(np.unique(family)), folds)
    groups = [np.unique(identity[np.isin(family, f)]) for f in fams]
    a, b, same, fold = [], [], [], []
    for k, group in enumerate(groups):
        members = {i: np.flatnonzero(identity == i) for i in group}
        for _ in range(pairs_per_fold):
            i = rng.choice(group)
            imgs = members[i]
            if hard:
                p = pose[imgs]
                lo, hi = imgs[np.argmin(p)], imgs[np.argmax(p)]
                first, second = (lo, hi) if rng.random() < 0.5 else (hi, lo)
                pick = rng.choice(len(imgs), 2, replace=False)
                first, second = (first, second) if hi != lo else tuple(imgs[pick])
            else:
                first, second = rng.choice(imgs, 2, replace=False)
            a.append(first), b.append(second), same.append(True), fold.append(k)
        for _ in range(pairs_per_fold):
            i = rng.choice(group)
            if hard:
                pool = [
                    j for j in group if j != i and family[members[j][0]] == family[members[i][0]]
                ]
                pool = pool or [j for j in group if j != i]
            else:
                pool = [j for j in group if j != i]
            j = rng.choice(pool)
            a.append(rng.choice(members[i])), b.append(rng.choice(members[j]))
            same.append(False), fold.append(k)
    return np.array(a), np.array(b), np.array(same), np.array(fold)


def kfold_report(emb: torch.Tensor, a, b, same, fold) -> dict:
    """10-fold accuracy (threshold from the other folds) and the official best-threshold
    accuracy over all pairs."""
    scores = (emb[a] * emb[b]).sum(1).numpy()
    mean, std = kfold_pair_accuracy(scores, same, fold_ids=fold)
    order = np.sort(scores)
    mids = np.r_[order[0] - 1e-6, (order[:-1] + order[1:]) / 2, order[-1] + 1e-6]
    best = max(((scores >= t) == same).mean() for t in mids[:: max(1, len(mids) // 2000)])
    return {"acc10": mean, "acc10_std": std, "acc_best_th": float(best)}


def pool_templates(emb: torch.Tensor, template: np.ndarray, media: np.ndarray) -> dict:
    """IJB template features: average within each media, sum across media, L2-normalise."""
    out = {}
    for t in np.unique(template):
        rows = template == t
        feats = [emb[rows & (media == m)].mean(0) for m in np.unique(media[rows])]
        out[int(t)] = F.normalize(torch.stack(feats).sum(0), dim=0)
    return out


def template_report(emb, identity, seed: int, n_templates: int = 2000, fars=FARS) -> dict:
    """Random templates of 1–5 images (each image its own media) scored all-against-all."""
    identity = np.asarray(identity)
    rng = np.random.default_rng(seed)
    template, media, owner = [], [], []
    ids = np.unique(identity)
    for t in range(n_templates):
        i = rng.choice(ids)
        pool = np.flatnonzero(identity == i)
        imgs = rng.choice(pool, min(len(pool), int(rng.integers(1, 6))), replace=False)
        template.append(np.full(len(imgs), t)), media.append(imgs), owner.append(i)
    rows = np.concatenate(media)
    feats = pool_templates(emb[rows], np.concatenate(template), np.arange(len(rows)))
    t_emb = torch.stack([feats[t] for t in range(n_templates)])
    scores, same = all_pair_scores(t_emb, torch.as_tensor(np.array(owner)))
    return {f"tmpl_tar@{far:.0e}": tar_at_far(scores, same, far) for far in fars}


def local_wdfs_rate(emb: torch.Tensor, identity: torch.Tensor) -> float:
    """Fraction of positive pairs whose similarity exceeds the largest negative similarity of
    either member (the well-discriminative condition, checked locally)."""
    sim = emb @ emb.t()
    same = identity[:, None] == identity[None, :]
    max_neg = sim.masked_fill(same, -2.0).max(1).values
    bar = torch.maximum(max_neg[:, None], max_neg[None, :])
    pos = same & ~torch.eye(len(emb), dtype=torch.bool)
    return float((sim[pos] > bar[pos]).float().mean())
