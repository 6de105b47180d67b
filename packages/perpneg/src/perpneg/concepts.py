"""The analytic "concept world" (spec §6a): Gaussian mixtures whose scores are exact.

Every binary attribute j owns a direction u_j; a mixture component k is an allowed attribute
combination with mean μ_k = Σ_j a_kj u_j and covariance s0²·I. A prompt is a soft likelihood
over components, p(c | k) = Π_{j ∈ c} (q_j if k has j else q̄_j), so p_t(x | c) is again a
Gaussian mixture and its ε-prediction is known in closed form. Guidance rules from
`perpneg.guidance` are applied to these exact predictions inside a DDIM sampler.

| symbol | meaning                                                      |
|--------|--------------------------------------------------------------|
| μ_k    | mean of component k (`means[k]`)                               |
| π_k    | prior weight of component k                                    |
| s0     | component standard deviation                                   |
| ᾱ_t    | cumulative signal level of the VP schedule at step t           |
| r_k    | posterior responsibility of component k given x_t and c        |
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

Prompt = Mapping[str, tuple[float, float]]


@dataclass(frozen=True)
class ConceptWorld:
    """A Gaussian mixture over allowed attribute combinations."""

    attr_names: tuple[str, ...]
    attrs: torch.Tensor  # (K, A) 0/1 attribute table of the components
    means: torch.Tensor  # (K, d)
    prior: torch.Tensor  # (K,)
    s0: float

    def prompt_weights(self, prompt: Prompt) -> torch.Tensor:
        """π_k · p(c | k) for every component k (unnormalised)."""
        w = self.prior.clone()
        for name, (q_yes, q_no) in prompt.items():
            if name not in self.attr_names:
                raise ValueError(f"prompt word {name!r} is not an attribute of this world")
            has = self.attrs[:, self.attr_names.index(name)].bool()
            w = w * torch.where(has, torch.tensor(q_yes), torch.tensor(q_no)).to(w)
        return w

    def eps(self, x: torch.Tensor, alpha_bar: float, weights: torch.Tensor) -> torch.Tensor:
        """Exact ε-prediction of p_t(x_t | c) for x of shape (N, d)."""
        a = math.sqrt(alpha_bar)
        var = alpha_bar * self.s0**2 + 1.0 - alpha_bar

        # Responsibilities r_k ∝ π_k p(c|k) N(x_t; √ᾱ μ_k, var·I).
        sq = torch.cdist(x, a * self.means).pow(2)
        logits = torch.log(weights.clamp_min(1e-300)) - sq / (2 * var)
        r = torch.softmax(logits, dim=1)

        # E[x0 | x_t, k] = μ_k + (s0² √ᾱ / var)(x_t − √ᾱ μ_k); then ε = (x_t − √ᾱ E[x0]) / √(1−ᾱ).
        mean_mu = r @ self.means
        x0_hat = mean_mu + (self.s0**2 * a / var) * (x - a * mean_mu)
        return (x - a * x0_hat) / math.sqrt(1.0 - alpha_bar)

    def label(self, x0: torch.Tensor) -> torch.Tensor:
        """Attribute table rows of the nearest component to every sample: (N, A)."""
        return self.attrs[torch.cdist(x0, self.means).argmin(1)]


def build_world(
    attr_names: Sequence[str],
    allowed: Callable[[dict[str, int]], bool],
    prior: Callable[[dict[str, int]], float] | None = None,
    dim: int = 8,
    length: float = 3.0,
    s0: float = 0.3,
) -> ConceptWorld:
    """All attribute combinations passing `allowed`, with orthogonal directions of `length`."""
    if len(attr_names) > dim:
        raise ValueError(f"{len(attr_names)} attributes need dim ≥ {len(attr_names)}, got {dim}")
    combos = []
    for bits in itertools.product((0, 1), repeat=len(attr_names)):
        combo = dict(zip(attr_names, bits, strict=True))
        if allowed(combo):
            combos.append(combo)
    attrs = torch.tensor([[c[n] for n in attr_names] for c in combos], dtype=torch.float64)
    directions = torch.zeros(len(attr_names), dim, dtype=torch.float64)
    directions[:, : len(attr_names)] = length * torch.eye(len(attr_names), dtype=torch.float64)
    p = torch.tensor([prior(c) if prior else 1.0 for c in combos], dtype=torch.float64)
    return ConceptWorld(tuple(attr_names), attrs, attrs @ directions, p / p.sum(), s0)


def vp_alpha_bars(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02):
    """ᾱ_t of the linear VP schedule, t = 0..T−1."""
    betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, 0)


def ddim_sample(
    guided_eps: Callable[[torch.Tensor, float], torch.Tensor],
    n: int,
    dim: int,
    steps: int = 50,
    generator: torch.Generator | None = None,
    T: int = 1000,
) -> torch.Tensor:
    """Deterministic DDIM (η = 0) from N(0, I); returns the final x0 estimate."""
    alpha_bars = vp_alpha_bars(T)
    ts = torch.linspace(T - 1, 0, steps).round().long().tolist()
    x = torch.randn(n, dim, generator=generator, dtype=torch.float64)
    for i, t in enumerate(ts):
        a_t = float(alpha_bars[t])
        a_prev = float(alpha_bars[ts[i + 1]]) if i + 1 < len(ts) else 1.0
        eps = guided_eps(x, a_t)
        x0 = (x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
        x = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * eps
    return x
