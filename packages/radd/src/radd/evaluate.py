"""NLL-bound evaluation and sample-quality judges.

The bound of a sequence is estimated by averaging `n_draws` independent draws of one of the
estimators (spec 1.7; the official evaluation uses 1024 draws). Two standard errors are
reported: `mc_se`, the Monte-Carlo error of the mean over the given sequences (what matters
when comparing estimators on the same data), and `data_se`, the spread over sequences.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import torch

from radd.losses import draw_noise, per_sequence_loss
from radd.schedule import Schedule


@torch.no_grad()
def estimate_bound(
    model,
    seqs: torch.Tensor,
    loss: str,
    schedule: Schedule,
    n_draws: int = 16,
    seed: int = 0,
    batch_size: int = 256,
    sampling_eps: float = 1e-3,
) -> dict:
    """Mean NLL bound per sequence (nats), per token, bits per token and perplexity."""
    if n_draws < 2:
        raise ValueError("n_draws must be at least 2 to estimate the Monte-Carlo error")
    N, L = seqs.shape
    g = torch.Generator().manual_seed(seed)
    draws = torch.zeros(n_draws, N, dtype=torch.float64)
    for d in range(n_draws):
        for start in range(0, N, batch_size):
            x0 = seqs[start : start + batch_size]
            noise = draw_noise(loss, len(x0), L, g, "iid", sampling_eps)
            draws[d, start : start + len(x0)] = per_sequence_loss(
                model, x0, noise, loss, schedule, sampling_eps
            )
    per_seq = draws.mean(dim=0)
    mean = per_seq.mean().item()
    per_draw_var = draws.var(dim=0).mean().item()
    return {
        "nats_per_seq": mean,
        "nats_per_token": mean / L,
        "bits_per_token": mean / L / math.log(2),
        "ppl": math.exp(mean / L),
        "mc_se": math.sqrt(per_draw_var / n_draws / N),
        "data_se": per_seq.std().item() / math.sqrt(N),
        "per_draw_std": math.sqrt(per_draw_var),
        "n_seqs": N,
        "n_draws": n_draws,
    }


class NGramJudge:
    """Add-k smoothed byte n-gram model fitted on the training split: a sample-quality judge."""

    def __init__(self, train_ids: np.ndarray, order: int = 4, k: float = 0.1, vocab: int = 257):
        self.order, self.k, self.vocab = order, k, vocab
        ids = [int(i) for i in np.asarray(train_ids).reshape(-1)]
        self.joint: Counter = Counter()
        self.context: Counter = Counter()
        for i in range(order - 1, len(ids)):
            ctx = tuple(ids[i - order + 1 : i])
            self.joint[(ctx, ids[i])] += 1
            self.context[ctx] += 1

    def nll_per_token(self, seqs: torch.Tensor) -> float:
        """Mean -log p of each token after the first order-1 of every sequence, nats."""
        total, count = 0.0, 0
        for row in seqs.tolist():
            for i in range(self.order - 1, len(row)):
                ctx = tuple(row[i - self.order + 1 : i])
                num = self.joint[(ctx, row[i])] + self.k
                den = self.context[ctx] + self.k * self.vocab
                total -= math.log(num / den)
                count += 1
        return total / count


def unigram_entropy(seqs: torch.Tensor, vocab: int) -> float:
    """Entropy (nats) of the token frequencies of a set of sequences."""
    counts = torch.bincount(seqs.reshape(-1), minlength=vocab).double()
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log()).sum())
