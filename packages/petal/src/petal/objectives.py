"""The equations of PETAL: losses, the source-posterior prior, the Fisher quantile and the EMA.

Every function here is a pure tensor function so that it can be checked against closed forms.

Symbols used in the docstrings:

| symbol | meaning |
|---|---|
| z | student logits, shape (B, K) |
| t | teacher (target) logits, shape (B, K) |
| θ | student parameters |
| μ | SWAG mean of the source posterior (also the restoration target) |
| s² | SWAG diagonal variance of the source posterior |
| λ | prior weight (`spw` in the official configs) |
| F | diagonal empirical Fisher: squared gradient of the total loss on one batch |
| δ | restoration quantile (`perc`) |
| α | EMA momentum of the teacher (`ema`) |
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

PRIOR_DAMPING = 1e-6
"""Added to s² in the prior term, as in the official CIFAR code (variances are not clamped)."""


def soft_cross_entropy(z: Tensor, t: Tensor) -> Tensor:
    """Per-sample soft cross-entropy −Σ_k softmax(t)_k log softmax(z)_k (teacher t → student z)."""
    return -(t.softmax(dim=1) * z.log_softmax(dim=1)).sum(dim=1)


def symmetric_cross_entropy(z: Tensor, t: Tensor) -> Tensor:
    """ImageNet variant: ½ CE(softmax(t) → z) + ½ CE(softmax(z) → t), with t detached.

    The second half still carries gradient to z through softmax(z), as in the official code.
    """
    t = t.detach()
    return 0.5 * soft_cross_entropy(z, t) + 0.5 * soft_cross_entropy(t, z)


def entropy(z: Tensor) -> Tensor:
    """Per-sample Shannon entropy of softmax(z) (TENT's loss)."""
    return -(z.softmax(dim=1) * z.log_softmax(dim=1)).sum(dim=1)


def gaussian_prior_penalty(
    theta: Iterable[Tensor],
    mu: Iterable[Tensor],
    var: Iterable[Tensor],
    damping: float = PRIOR_DAMPING,
) -> Tensor:
    """Negative Gaussian log-prior ½ Σ_j (θ_j − μ_j)² / (s²_j + damping), up to a constant.

    This is the log p(θ | D_s) term of the PETAL objective (Eq. 12 of the paper's appendix),
    summed over every parameter tensor. Gradient flows only into θ.
    """
    total = None
    for th, m, v in zip(theta, mu, var, strict=True):
        if th.shape != m.shape or th.shape != v.shape:
            raise ValueError(
                f"prior shapes differ: θ {tuple(th.shape)}, μ {tuple(m.shape)}, s² {tuple(v.shape)}"
            )
        term = 0.5 * ((th - m.detach()) ** 2 / (v.detach() + damping)).sum()
        total = term if total is None else total + term
    if total is None:
        raise ValueError("gaussian_prior_penalty got no parameters")
    return total


def linear_quantile(values: Tensor, delta: float) -> Tensor:
    """δ-quantile of a flat tensor with linear interpolation between order statistics.

    Equals `numpy.quantile(values, δ)` (method "linear"); unlike `torch.quantile` it accepts
    more than 2^24 elements (WRN-28-10 has 36.5M parameters). Returns a 0-d tensor of the
    input's dtype.
    """
    if not 0.0 <= delta <= 1.0:
        raise ValueError(f"quantile level δ must lie in [0, 1], got {delta}")
    flat = values.reshape(-1)
    n = flat.numel()
    if n == 0:
        raise ValueError("quantile of an empty tensor")
    ordered = torch.sort(flat).values
    r = delta * (n - 1)
    lo = int(r)
    hi = min(lo + 1, n - 1)
    frac = r - lo
    return ordered[lo] + (ordered[hi] - ordered[lo]) * frac


def fim_restore_masks(grads: list[Tensor], delta: float) -> list[Tensor]:
    """PETAL-FIM: boolean masks of the parameters to restore, F_j < ε with ε = quantile_δ(F).

    F = grad² elementwise (the single-batch diagonal empirical Fisher of the total loss); the
    quantile is taken globally over all parameters. The comparison is strict, so when at
    least a δ share of F is exactly zero, ε = 0 and nothing is restored (as in the official
    code).
    """
    fisher = [g.detach() ** 2 for g in grads]
    eps = linear_quantile(torch.cat([f.reshape(-1) for f in fisher]), delta)
    return [f < eps for f in fisher]


def bernoulli_restore_masks(
    params: list[Tensor], p: float, generator: torch.Generator | None = None
) -> list[Tensor]:
    """CoTTA / PETAL-SRes: an independent Bernoulli(p) mask per parameter element."""
    # Drawn on the CPU generator (reproducible on any device), then moved.
    return [(torch.rand(t.shape, generator=generator) < p).to(t.device) for t in params]


@torch.no_grad()
def restore_(params: list[Tensor], source: list[Tensor], masks: list[Tensor]) -> int:
    """θ[mask] ← μ[mask] in place; returns how many elements were restored."""
    count = 0
    for th, mu, m in zip(params, source, masks, strict=True):
        th.copy_(torch.where(m, mu.to(th.dtype), th))
        count += int(m.sum())
    return count


@torch.no_grad()
def ema_update_(teacher: list[Tensor], student: list[Tensor], alpha: float) -> None:
    """θ̄ ← α θ̄ + (1 − α) θ, in place over every parameter tensor."""
    for tb, th in zip(teacher, student, strict=True):
        tb.mul_(alpha).add_(th.detach(), alpha=1.0 - alpha)
