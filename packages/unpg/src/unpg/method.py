"""UNPG: unified negative pair generation (the paper's algorithm).

The classification loss (CLPG) pairs every sample with all class proxies; UNPG appends the
mini-batch's sample-to-sample negatives (MLPG), filtered by Tukey's fences, as extra negative
columns to *every* row of the logit matrix, at the head's scale and without a margin:

    L_i = −log  e^{s ψ(θ_{i,y_i})} / ( e^{s ψ(θ_{i,y_i})} + Σ_{j≠y_i} e^{s cos θ_ij}
                                          + Σ_{t ∈ S'^n} e^{s t} )

| symbol | meaning |
|---|---|
| ``f`` | L2-normalised embeddings, B×d |
| ``S^n`` | {f_a·f_b : a < b, y_a ≠ y_b}, the batch's negative pair similarities |
| ``S'^n`` | Filter_r(S^n), the kept negatives |
| ``r`` | whisker of the box-and-whisker rule (1.5 by default, ∞ disables the filter) |
| ``Q1, Q3`` | nearest-rank quartiles sorted[⌊n/4⌋], sorted[⌊3n/4⌋] |
| ``s`` | the head's logit scale |
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from unpg.heads import MarginHead


def negative_pair_similarities(f: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """S^n: f_a·f_b for every unordered pair a < b with different labels (flat vector)."""
    gram = f @ f.t()
    different = labels[:, None] != labels[None, :]
    upper = torch.ones_like(different).triu(diagonal=1)
    return gram[different & upper]


def whisker_fences(values: torch.Tensor, r: float) -> tuple[float, float]:
    """Tukey fences [Q1 − r·IQR, Q3 + r·IQR] with 0-based nearest-rank quartiles (no
    interpolation). An empty input gives (+inf, −inf), which keeps nothing."""
    n = values.numel()
    if n == 0:
        return math.inf, -math.inf
    if math.isinf(r):
        return -math.inf, math.inf
    ordered = torch.sort(values.detach().flatten()).values
    q1, q3 = ordered[n // 4].item(), ordered[(3 * n) // 4].item()
    iqr = q3 - q1
    return q1 - r * iqr, q3 + r * iqr


def whisker_filter(values: torch.Tensor, r: float) -> torch.Tensor:
    """Filter_r: keep every value inside the fences (inclusive on both sides), sorted."""
    lower, upper = whisker_fences(values, r)
    if values.numel() == 0:
        return values
    # Sorting keeps the result independent of the input order; the loss does not care.
    ordered = torch.sort(values.flatten()).values
    return ordered[(ordered >= lower) & (ordered <= upper)]


def unpg_logits(head_logits: torch.Tensor, extra: torch.Tensor, s: float) -> torch.Tensor:
    """s·[ψ-logits, S'^n]: the shared extra negatives appended to every row.

    ``extra`` is either a vector (the shared form, broadcast to all rows) or a B×K matrix with
    −inf where a column does not apply to a row (the per-anchor form).
    """
    if extra.dim() == 1:
        extra = extra[None, :].expand(head_logits.shape[0], -1)
    return s * torch.cat([head_logits, extra.to(head_logits.dtype)], dim=1)


def unpg_cross_entropy(
    head_logits: torch.Tensor, extra: torch.Tensor, labels: torch.Tensor, s: float
) -> torch.Tensor:
    """Mean over rows of −log softmax at the target; labels index only the first C columns.

    For the shared form the appended columns are the same in every row, so their share of each
    row's normaliser is one scalar, log Σ_k e^{s t_k}; it is computed once and joined to every
    row's log-sum-exp. This equals the cross-entropy over the concatenated B×(C+K) matrix
    (``unpg_logits``) in value and gradient, at O(B·C + K) instead of O(B·(C + K)) cost.
    """
    if extra.numel() == 0:
        return F.cross_entropy(s * head_logits, labels)
    if extra.dim() == 2:
        return F.cross_entropy(unpg_logits(head_logits, extra, s), labels)
    scaled = s * head_logits
    extra_lse = torch.logsumexp(s * extra.to(scaled.dtype), dim=0)
    row_lse = torch.logsumexp(scaled, dim=1)
    normaliser = torch.logaddexp(row_lse, extra_lse)
    target = scaled.gather(1, labels[:, None]).squeeze(1)
    return (normaliser - target).mean()


class _AllGather(torch.autograd.Function):
    """All-gather whose backward sums every rank's gradient for this rank's chunk."""

    @staticmethod
    def forward(ctx, x):
        out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(out, x.contiguous())
        return tuple(out)

    @staticmethod
    def backward(ctx, *grads):
        g = torch.stack(grads)
        dist.all_reduce(g)
        return g[dist.get_rank()]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """All-gather along dim 0 keeping the autograd path (local chunk stays the local tensor)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    chunks = list(_AllGather.apply(x))
    chunks[dist.get_rank()] = x
    return torch.cat(chunks, dim=0)


def gather_labels(labels: torch.Tensor) -> torch.Tensor:
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return labels
    out = [torch.empty_like(labels) for _ in range(dist.get_world_size())]
    dist.all_gather(out, labels)
    return torch.cat(out, dim=0)


class UNPGLoss(nn.Module):
    """A margin head's cross-entropy, optionally with UNPG's extra negatives.

    Args:
        head: any :class:`~unpg.heads.MarginHead`.
        unpg: append the filtered batch negatives (``False`` gives the base loss exactly).
        whisker: r of the box-and-whisker filter; ``math.inf`` disables filtering.
        scope: ``"shared"`` (the paper: every row gets all of S'^n) or ``"anchor"`` (row i
            gets only the kept pairs that contain sample i).
        modulate_extra: let the head re-weight the extra columns as it re-weights its own
            negatives (CurricularFace); off by default.
        gather: under ``torch.distributed``, form S^n over the global batch (all-gather with
            gradient), as the official DataParallel path does over the whole batch.
    """

    def __init__(
        self,
        head: MarginHead,
        unpg: bool = True,
        whisker: float = 1.5,
        scope: str = "shared",
        modulate_extra: bool = False,
        gather: bool = True,
    ):
        super().__init__()
        if whisker < 0 or math.isnan(whisker):
            raise ValueError(f"the whisker r must be >= 0 (inf disables the filter), got {whisker}")
        if scope not in ("shared", "anchor"):
            raise ValueError(f"scope must be 'shared' or 'anchor', got {scope!r}")
        self.head, self.unpg, self.whisker = head, unpg, float(whisker)
        self.scope, self.modulate, self.gather = scope, modulate_extra, gather
        self.last_stats: dict[str, float] = {}

    def extra_negatives(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """S'^n for the shared scope (vector) or the B_local×B_global matrix for 'anchor'."""
        f_local = F.normalize(x, dim=1)
        f = gather_with_grad(f_local) if self.gather else f_local
        y = gather_labels(labels) if self.gather else labels
        neg = negative_pair_similarities(f, y)
        lower, upper = whisker_fences(neg, self.whisker)
        self.last_stats = {
            "pairs": float(neg.numel()),
            "kept": float(((neg >= lower) & (neg <= upper)).sum()) if neg.numel() else 0.0,
        }
        if self.scope == "shared":
            return whisker_filter(neg, self.whisker)
        # Per-anchor variant: row i sees f_i·f_b for b with another label, inside the fences.
        offset = dist.get_rank() * x.shape[0] if f is not f_local else 0
        sim = f_local @ f.t()
        rows = torch.arange(x.shape[0], device=x.device) + offset
        keep = (labels[:, None] != y[None, :]) & (sim >= lower) & (sim <= upper)
        keep[torch.arange(x.shape[0]), rows] = False
        return sim.masked_fill(~keep, -math.inf)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        out = self.head(x, labels)
        if not self.unpg:
            return F.cross_entropy(self.head.s * out.logits, labels) + out.regularizer
        extra = self.extra_negatives(x, labels)
        if self.modulate and extra.numel():
            full = extra if extra.dim() == 2 else extra[None, :].expand(x.shape[0], -1)
            extra = self.head.modulate_extra(full, out.logits, labels)
        return unpg_cross_entropy(out.logits, extra, labels, self.head.s) + out.regularizer
