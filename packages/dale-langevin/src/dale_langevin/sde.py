"""The two forward processes: geometric Brownian motion (the paper) and pixel-space VE (baseline).

GBM, per coordinate (spec §1.2–1.4):

    dX_t = μ X_t dt + σ X_t dW_t,         X_t = X_0 exp((μ − σ²/2) t + σ W_t)
    log X_t | x_0 ~ N(log x_0 + (μ − σ²/2) t, σ² t)

With μ = σ²/2 the log-drift vanishes and Y = log X follows a variance-exploding SDE with constant
diffusion σ: the GBM model is a VE model on log-pixels (§1.4).

| symbol | meaning |
|---|---|
| σ (`sigma`) | GBM volatility (paper: 0.8) |
| μ (`mu`) | GBM drift (paper: σ²/2) |
| T | horizon (1) |
| N | number of discrete noise levels (1000) |
| h | Hyvärinen score x ∘ ∇_x log p_t(x) |
| c (`offset`) | positivity offset: x_0 = pixel + c |
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


class PositivityError(ValueError):
    """Data handed to the multiplicative model is not strictly positive."""


def check_positive(x: torch.Tensor, what: str = "data") -> None:
    """Refuse non-positive or non-finite input to the log-domain model with a clear message."""
    if not torch.isfinite(x).all():
        raise PositivityError(f"{what} holds NaN or infinite values; clean the input first.")
    low = float(x.min())
    if low <= 0:
        raise PositivityError(
            f"{what} must be strictly positive for the GBM model, but its minimum is {low:.4g}. "
            "Pixels in [0, 1] are made positive with x0 = pixel + offset (offset > 0, default 1)."
        )


@dataclass(frozen=True)
class GBM:
    """Geometric Brownian motion with constant coefficients on t ∈ [0, T]."""

    sigma: float = 0.8
    mu: float = 0.32
    T: float = 1.0
    N: int = 1000

    @property
    def log_drift(self) -> float:
        """μ − σ²/2: the drift of log X_t (zero with the paper's constants)."""
        return self.mu - 0.5 * self.sigma**2

    def log_marginal(self, log_x0: torch.Tensor, t: torch.Tensor | float):
        """Mean and variance of log X_t given log x_0 (§1.3)."""
        t = torch.as_tensor(t, dtype=log_x0.dtype)
        return log_x0 + self.log_drift * t, self.sigma**2 * t

    def forward_sample(self, x0: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """x_t = x_0 ∘ exp((μ − σ²/2) t + σ √t z), the closed-form GBM transition (§1.2).

        `t` broadcasts against `x0` (shape (B, 1, 1, 1) for images).
        """
        return x0 * torch.exp(self.log_drift * t + self.sigma * torch.sqrt(t) * z)

    def transition_logpdf(self, xt: torch.Tensor, x0: torch.Tensor, t: torch.Tensor):
        """log p(x_t | x_0), the log-normal kernel of §1.3, element-wise."""
        mean, var = self.log_marginal(torch.log(x0), t)
        u = torch.log(xt)
        return -u - 0.5 * torch.log(2 * math.pi * var) - (u - mean) ** 2 / (2 * var)

    def kernel_hyvarinen(self, xt: torch.Tensor, x0: torch.Tensor, t: torch.Tensor):
        """x_t ∘ ∇ log p(x_t | x_0) = −1 − (log x_t − m_t)/v_t (§1.3)."""
        mean, var = self.log_marginal(torch.log(x0), t)
        return -1.0 - (torch.log(xt) - mean) / var

    def hyvarinen_target(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The M-DSM regression target −1 − z/(σ√t) for x_t drawn with noise z (§1.8)."""
        return -1.0 - z / (self.sigma * torch.sqrt(t))

    def level_times(self) -> torch.Tensor:
        """t_k = k T / N for k = 1..N: the levels trained on and visited by the sampler."""
        return torch.arange(1, self.N + 1, dtype=torch.float64) * self.T / self.N


def fit_lognormal_prior(log_x0: torch.Tensor, gbm: GBM, per_pixel: bool = False):
    """Moment-matched log-normal prior for X_T (§1.9).

    m = E[log x_0] + (μ − σ²/2) T,  s² = Var[log x_0] + σ² T, pooled over pixels or per pixel.
    `log_x0` has shape (n, ...). Returns (m, s) as tensors (scalars when pooled).
    """
    if per_pixel:
        mean, var = log_x0.mean(0), log_x0.var(0, unbiased=False)
    else:
        mean, var = log_x0.mean(), log_x0.var(unbiased=False)
    m = mean + gbm.log_drift * gbm.T
    s = torch.sqrt(var + gbm.sigma**2 * gbm.T)
    return m, s


@dataclass(frozen=True)
class VESDE:
    """Pixel-space variance-exploding SDE (Song et al. 2021), the additive baseline.

    σ(t) = σ_min (σ_max/σ_min)^t, dx = g(t) dW with g(t)² = d σ(t)²/dt = 2 σ(t)² ln(σ_max/σ_min).
    """

    sigma_min: float = 0.01
    sigma_max: float = 10.0
    T: float = 1.0
    N: int = 1000

    def marginal_std(self, t: torch.Tensor) -> torch.Tensor:
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def g2(self, t: torch.Tensor) -> torch.Tensor:
        return 2 * self.marginal_std(t) ** 2 * math.log(self.sigma_max / self.sigma_min)

    def forward_sample(self, x0: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return x0 + self.marginal_std(t) * z

    def level_times(self) -> torch.Tensor:
        return torch.arange(1, self.N + 1, dtype=torch.float64) * self.T / self.N


def largest_pairwise_distance(x: torch.Tensor, chunk: int = 512) -> float:
    """max_{i,j} ‖x_i − x_j‖₂ over a data set: σ_max for VE (Song & Ermon 2020)."""
    flat = x.reshape(len(x), -1).double()
    best = 0.0
    for start in range(0, len(flat), chunk):
        d = torch.cdist(flat[start : start + chunk], flat)
        best = max(best, float(d.max()))
    return best
