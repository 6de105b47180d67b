"""Metrics shared by the paper packages, each tested against a closed form or scikit-learn.

| group | functions |
|---|---|
| classification | `error_rate`, `nll`, `brier`, `ece`, `classification_metrics` |
| verification | `roc_curve`, `tar_at_far`, `kfold_pair_accuracy` |
| generative | `frechet_distance`, `kid` |
| language | `perplexity`, `bits_per_token` |
| statistics | `mean_std`, `paired_difference`, `bootstrap_ci` |
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg, stats

# Classification -------------------------------------------------------------------------------


def error_rate(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of samples whose arg-max class differs from the label."""
    return (scores.argmax(dim=-1) != labels).float().mean().item()


def nll(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean negative log-likelihood of the labels under softmax(logits), in nats."""
    return F.cross_entropy(logits.double(), labels).item()


def brier(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Multi-class Brier score: Σ_k (p_k − 1[y = k])², averaged over samples; in [0, 2]."""
    onehot = F.one_hot(labels, probs.shape[-1]).to(probs.dtype)
    return (probs - onehot).pow(2).sum(dim=-1).mean().item()


def ece(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """Expected calibration error with equal-width bins on the max probability."""
    conf, pred = probs.max(dim=-1)
    correct = (pred == labels).double()
    conf = conf.double()
    bins = torch.clamp((conf * n_bins).ceil().long() - 1, 0, n_bins - 1)
    total = torch.zeros(n_bins, dtype=torch.float64)
    gap = torch.zeros(n_bins, dtype=torch.float64)
    total.index_add_(0, bins, torch.ones_like(conf))
    gap.index_add_(0, bins, conf - correct)
    return (gap.abs().sum() / len(conf)).item()


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Error, NLL, Brier and ECE of one set of predictions."""
    logits = logits.detach().double()
    probs = logits.softmax(dim=-1)
    return {
        "error": error_rate(logits, labels),
        "nll": nll(logits, labels),
        "brier": brier(probs, labels),
        "ece": ece(probs, labels),
    }


# Verification ---------------------------------------------------------------------------------


def roc_curve(scores, is_same) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-accept rate, true-accept rate and thresholds (accept when score ≥ threshold).

    Thresholds run from +inf (nothing accepted) down to the lowest score, one per distinct
    score, as in scikit-learn's `roc_curve(drop_intermediate=False)`.
    """
    scores = np.asarray(scores, dtype=np.float64)
    is_same = np.asarray(is_same, dtype=bool)
    n_pos, n_neg = is_same.sum(), (~is_same).sum()
    if n_pos == 0 or n_neg == 0:
        raise ValueError("roc_curve needs both genuine (same) and impostor (different) pairs")
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], is_same[order]
    last_of_run = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp = np.cumsum(y)[last_of_run]
    fp = np.cumsum(~y)[last_of_run]
    far = np.r_[0.0, fp / n_neg]
    tar = np.r_[0.0, tp / n_pos]
    thresholds = np.r_[np.inf, s[last_of_run]]
    return far, tar, thresholds


def tar_at_far(scores, is_same, far: float) -> float:
    """The largest true-accept rate whose false-accept rate is at most `far`."""
    fars, tars, _ = roc_curve(scores, is_same)
    return float(tars[fars <= far].max())


def _best_threshold(scores: np.ndarray, is_same: np.ndarray) -> float:
    candidates = np.unique(scores)
    mids = np.r_[candidates[0] - 1e-6, (candidates[:-1] + candidates[1:]) / 2, candidates[-1]]
    # Accuracy at every candidate at once: genuine pairs at or above t, impostors below t.
    genuine = np.sort(scores[is_same])
    impostor = np.sort(scores[~is_same])
    accepted = len(genuine) - np.searchsorted(genuine, mids, side="left")
    rejected = np.searchsorted(impostor, mids, side="left")
    return float(mids[int(np.argmax(accepted + rejected))])


def kfold_pair_accuracy(
    scores, is_same, folds: int = 10, fold_ids: Sequence[int] | None = None
) -> tuple[float, float]:
    """LFW-protocol accuracy: threshold chosen on k−1 folds, accuracy on the held-out fold.

    `fold_ids` assigns each pair to a fold (use identity-disjoint folds where the benchmark
    defines them); by default pairs are cut into `folds` consecutive blocks.
    """
    scores = np.asarray(scores, dtype=np.float64)
    is_same = np.asarray(is_same, dtype=bool)
    if fold_ids is None:
        fold_ids = np.arange(len(scores)) * folds // len(scores)
    fold_ids = np.asarray(fold_ids)
    accs = []
    for k in np.unique(fold_ids):
        test = fold_ids == k
        threshold = _best_threshold(scores[~test], is_same[~test])
        accs.append(((scores[test] >= threshold) == is_same[test]).mean())
    return float(np.mean(accs)), float(np.std(accs))


# Generative -----------------------------------------------------------------------------------


def frechet_distance(feats_a, feats_b) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (the FID formula)."""
    a = np.asarray(feats_a, dtype=np.float64)
    b = np.asarray(feats_b, dtype=np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    # tr((Σa Σb)^½) = Σ_i sqrt(λ_i(Σa^½ Σb Σa^½)); the symmetric form keeps it real.
    w, v = linalg.eigh(cov_a)
    sqrt_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    eig = linalg.eigvalsh(sqrt_a @ cov_b @ sqrt_a)
    trace_sqrt = np.sqrt(np.clip(eig, 0, None)).sum()
    value = ((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt
    return float(max(value, 0.0))


def kid(
    feats_a, feats_b, subset_size: int = 1000, n_subsets: int = 100, seed: int = 0
) -> tuple[float, float]:
    """Kernel inception distance: unbiased MMD² with k(x, y) = (xᵀy / d + 1)³, over subsets."""
    a = np.asarray(feats_a, dtype=np.float64)
    b = np.asarray(feats_b, dtype=np.float64)
    m = min(subset_size, len(a), len(b))
    d = a.shape[1]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        off = m * (m - 1)
        mmd = (kxx.sum() - np.trace(kxx)) / off + (kyy.sum() - np.trace(kyy)) / off
        values.append(mmd - 2 * kxy.mean())
    return float(np.mean(values)), float(np.std(values))


# Language -------------------------------------------------------------------------------------


def perplexity(total_nll_nats: float, n_tokens: int) -> float:
    """exp(total NLL / tokens)."""
    return math.exp(total_nll_nats / n_tokens)


def bits_per_token(total_nll_nats: float, n_tokens: int) -> float:
    """Total NLL per token in bits."""
    return total_nll_nats / n_tokens / math.log(2)


# Statistics over seeds ------------------------------------------------------------------------


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1; 0 for a single value)."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def paired_difference(a, b, confidence: float = 0.95) -> dict[str, float]:
    """Mean of a − b over pairs with a Student-t confidence interval."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    n = len(diff)
    mean, std = mean_std(diff)
    if n > 1:
        half = stats.t.ppf(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)
    else:
        half = math.inf
    return {"mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half, "n": n}


def bootstrap_ci(
    values,
    statistic: Callable[[np.ndarray], float] = np.mean,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of `statistic` over the samples in `values`."""
    v = np.asarray(values)
    rng = np.random.default_rng(seed)
    boots = [statistic(v[rng.integers(0, len(v), len(v))]) for _ in range(n_boot)]
    alpha = (1 - confidence) / 2
    low, high = np.quantile(boots, [alpha, 1 - alpha])
    return float(low), float(high)
