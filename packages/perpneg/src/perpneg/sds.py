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


def guided_sds_grad(
    denoiser,
    spec,
    latents: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    t: torch.Tensor,
    noise: torch.Tensor,
    weight: str = "sds",
    lam: float = 1.0,
) -> torch.Tensor:
    """One SDS gradient with any guidance rule (spec §1.7).

    z_t = √ᾱ_t z + √(1 − ᾱ_t) ε; all 1 + 1 + K branches of `spec` (a
    `perpneg.sampling.GuidanceSpec`, per-sample view weights allowed) are evaluated in one
    batched call without gradient, combined, and turned into λ·w(t)·(ε̂ − ε).
    """
    from perpneg.sampling import predict_branches

    a = alphas_cumprod.to(latents)[t].reshape(-1, *([1] * (latents.ndim - 1)))
    z_t = a.sqrt() * latents.detach() + (1 - a).sqrt() * noise
    with torch.no_grad():
        preds = predict_branches(denoiser, z_t, t, spec.branches(), batch_branches=True)
    return sds_grad(spec.guide(preds), noise, alphas_cumprod, t, weight, lam)
