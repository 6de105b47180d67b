"""How a network output becomes a score, for the multiplicative and the additive model."""

from __future__ import annotations

import torch
from torch import nn

from dale_langevin.config import DaleConfig
from dale_langevin.sde import GBM, VESDE


def gbm_of(cfg: DaleConfig) -> GBM:
    return GBM(sigma=cfg.sigma, mu=cfg.mu, T=cfg.horizon, N=cfg.levels)


def ve_of(cfg: DaleConfig, sigma_max: float) -> VESDE:
    return VESDE(sigma_min=cfg.ve_sigma_min, sigma_max=sigma_max, T=cfg.horizon, N=cfg.levels)


def _batch_t(t, x: torch.Tensor) -> torch.Tensor:
    # A scalar time stays a (1,)-tensor: the networks broadcast its embedding over the batch.
    t = torch.as_tensor(t, dtype=torch.float32, device=x.device)
    return t.reshape(1) if t.ndim == 0 else t


def _bcast(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return t.view(-1, *([1] * (x.ndim - 1))).to(x.dtype)


class GBMScore:
    """Hyvärinen score h = x ∘ s_θ(x, t) of the multiplicative model.

    The network always sees (input, t). With `score_param="stein"` its output is the Stein score
    s_θ and the multiplicative form x ∘ s_θ is applied outside it, as in the paper; with
    `"scaled"` the output divided by σ√t is h itself (the log-noise std of §1.3, as score_sde
    divides by the marginal std).
    """

    def __init__(self, net: nn.Module, cfg: DaleConfig):
        self.net, self.cfg, self.gbm = net, cfg, gbm_of(cfg)

    def network_input(self, x: torch.Tensor) -> torch.Tensor:
        if self.cfg.input_mode == "paper":
            return 2 * x - 1
        # UMS iterates can leave the positive orthant; the log input then sees the floor.
        return torch.log(x.clamp_min(1e-6))

    def __call__(self, x: torch.Tensor, t) -> torch.Tensor:
        tb = _batch_t(t, x)
        out = self.net(self.network_input(x), tb)
        if self.cfg.score_param == "stein":
            return x * out
        return out / (self.gbm.sigma * torch.sqrt(_bcast(tb, x)))


class VEScore:
    """Stein score of the additive baseline: s_θ = net(x, t) / σ(t)."""

    def __init__(self, net: nn.Module, ve: VESDE):
        self.net, self.ve = net, ve

    def __call__(self, x: torch.Tensor, t) -> torch.Tensor:
        tb = _batch_t(t, x)
        return self.net(x, tb) / _bcast(self.ve.marginal_std(tb.double()), x)
