"""The paper's mechanism claim: how far the negatives a loss *sees* are from *all* negatives.

On a probe of training images: ``P_all`` are all negative feature–feature cosines, ``P_CL``
the cosines from samples to other classes' proxies (what a margin-softmax loss sees), ``P_ML``
the negatives inside simulated mini-batches, and ``P_UN = P_CL ∪ Filter_r(P_ML)`` weighted as
the UNPG loss sees them (each row: C − 1 proxy negatives plus the |S'^n| shared ones).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from unpg.method import negative_pair_similarities, whisker_filter


def weighted_stats(values: np.ndarray, weights: np.ndarray | None = None) -> dict:
    """Mean, std, 99th / 99.9th percentiles and maximum of a (weighted) sample."""
    values = np.asarray(values, dtype=np.float64)
    w = np.ones_like(values) if weights is None else np.asarray(weights, dtype=np.float64)
    order = np.argsort(values)
    v, cw = values[order], np.cumsum(w[order]) / w.sum()
    mean = float(np.average(v, weights=w[order]))
    std = float(np.sqrt(np.average((v - mean) ** 2, weights=w[order])))

    def q(p):
        return float(v[min(np.searchsorted(cw, p), len(v) - 1)])

    return {"mean": mean, "std": std, "p99": q(0.99), "p999": q(0.999), "max": float(v[-1])}


def _cdfs(a, wa, b, wb):
    grid = np.union1d(a, b)

    def cdf(v, w):
        order = np.argsort(v)
        cw = np.r_[0.0, np.cumsum(w[order]) / w.sum()]
        return cw[np.searchsorted(v[order], grid, side="right")]

    return grid, cdf(a, wa), cdf(b, wb)


def distances(a, b, wa=None, wb=None) -> dict:
    """1-Wasserstein distance and Kolmogorov–Smirnov statistic between weighted samples."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    wa = np.ones_like(a) if wa is None else np.asarray(wa, np.float64)
    wb = np.ones_like(b) if wb is None else np.asarray(wb, np.float64)
    grid, fa, fb = _cdfs(a, wa, b, wb)
    w1 = float(np.sum(np.abs(fa - fb)[:-1] * np.diff(grid)))
    return {"w1": w1, "ks": float(np.abs(fa - fb).max())}


@torch.no_grad()
def mismatch(
    emb: torch.Tensor,
    labels: torch.Tensor,
    proxies: torch.Tensor,
    batch_size: int,
    whisker: float,
    seed: int,
    batches: int = 20,
    max_all: int = 400_000,
) -> dict:
    """Statistics of P_all, P_CL, P_ML, P_UN and their W1 / KS distances to P_all."""
    g = torch.Generator().manual_seed(seed)
    f = F.normalize(emb.double(), dim=1)
    w = F.normalize(proxies.double(), dim=1)
    p_all = negative_pair_similarities(f, labels)
    if len(p_all) > max_all:
        p_all = p_all[torch.randperm(len(p_all), generator=g)[:max_all]]
    cl, ml, un, un_w = [], [], [], []
    for _ in range(batches):
        idx = torch.randperm(len(f), generator=g)[:batch_size]
        cos = f[idx] @ w.t()
        other = torch.ones_like(cos, dtype=torch.bool)
        other[torch.arange(len(idx)), labels[idx]] = False
        p_cl = cos[other]
        neg = negative_pair_similarities(f[idx], labels[idx])
        kept = whisker_filter(neg, whisker)
        cl.append(p_cl), ml.append(neg)
        # Every row of the UNPG logits sees all kept pairs once: weight them by the row count.
        un.append(torch.cat([p_cl, kept]))
        un_w.append(torch.cat([torch.ones_like(p_cl), torch.full_like(kept, float(len(idx)))]))
    dists = {
        "all": (p_all.numpy(), None),
        "cl": (torch.cat(cl).numpy(), None),
        "ml": (torch.cat(ml).numpy(), None),
        "un": (torch.cat(un).numpy(), torch.cat(un_w).numpy()),
    }
    out = {}
    edges = np.linspace(-0.6, 1.0, 65)
    for name, (v, wt) in dists.items():
        out[name] = weighted_stats(v, wt)
        hist, _ = np.histogram(v, bins=edges, weights=wt, density=True)
        out[name]["hist"] = hist.tolist()
        out[name]["hist_centres"] = ((edges[1:] + edges[:-1]) / 2).tolist()
        if name != "all":
            out[name].update(distances(v, dists["all"][0], wt, None))
    return out
