"""Score distillation (SDS) with Perp-Neg (spec §1.7).

| symbol  | meaning                                                         |
|---------|-----------------------------------------------------------------|
| z       | clean latent (or 64×64 pixels) of the rendering g(θ)              |
| t       | diffusion timestep drawn from U{t_min, ..., t_max}               |
| ᾱ_t     | cumulative product of (1 − β)                                     |
| ε       | the noise added to form z_t = √ᾱ_t z + √(1 − ᾱ_t) ε               |
| ε̂       | guided prediction (CFG or Perp-Neg)                               |
| λ       | guidance weight (`lambda_guidance`, 1 in stable-dreamfusion)      |
"""

from __future__ import annotations

import torch


def sds_grad(
    eps_hat: torch.Tensor,
    noise: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    t: torch.Tensor,
    weight: str = "sds",
    lam: float = 1.0,
) -> torch.Tensor:
    """grad_z = λ·w(t)·(ε̂ − ε), with w(t) = 1 − ᾱ_t ("sds") or 1 ("uniform"); NaNs zeroed."""
    a_bar = alphas_cumprod.to(eps_hat.device, eps_hat.dtype)[t]
    if weight == "sds":
        w = 1.0 - a_bar
    elif weight == "uniform":
        w = torch.ones_like(a_bar)
    else:
        raise ValueError(f"unknown SDS weighting {weight!r}; choose 'sds' or 'uniform'")
    w = w.reshape(-1, *([1] * (eps_hat.ndim - 1)))
    return torch.nan_to_num(lam * w * (eps_hat - noise))


def sds_loss(latents: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """A surrogate whose gradient with respect to `latents` is `grad` (sum reduction)."""
    target = (latents - grad).detach()
    return 0.5 * ((latents - target) ** 2).sum()
