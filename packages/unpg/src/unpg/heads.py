"""Margin heads (CLPG): sample-to-proxy cosines with the base loss's margin on the target.

Every head maps raw embeddings ``x`` (B×d) and labels ``y`` (B) to a :class:`HeadOutput`:
the *unscaled* B×C logit matrix (cosines, target column replaced by ψ(θ_y), non-targets
possibly re-weighted) plus an optional scalar regulariser. The scale ``s`` is applied by the
loss (see :mod:`unpg.method`), so UNPG can append its extra columns at the head's own scale.

Symbols used in the math below:

| symbol | meaning |
|---|---|
| ``x`` | raw embedding, B×d |
| ``f`` | ``x / ||x||`` |
| ``W`` | class proxies, C×d (rows normalised before use) |
| ``cos`` | ``f W^T``, cos θ_ij |
| ``θ_y`` | angle between a sample and its own proxy |
| ``s`` | logit scale |
| ``m`` | additive / multiplicative margin |
| ``a`` | MagFace feature magnitude clamp(||x||, l_a, u_a) |
| ``ms`` | AdaFace margin scaler from the batch-normalised feature norm |
| ``t`` | CurricularFace EMA of the mean target cosine |
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

HEADS = ("arcface", "cosface", "sphereface", "magface", "adaface", "curricularface")
_EPS = 1e-7


@dataclass
class HeadOutput:
    """Unscaled logits (B×C) and the head's regulariser (a scalar tensor, 0 if none)."""

    logits: torch.Tensor
    regularizer: torch.Tensor


def _clamp_cos(cos: torch.Tensor) -> torch.Tensor:
    return cos.clamp(-1.0 + _EPS, 1.0 - _EPS)


def _sin_from_cos(cos: torch.Tensor) -> torch.Tensor:
    # sqrt has an infinite slope at 0; the floor keeps gradients finite at θ ∈ {0, π}.
    return torch.sqrt((1.0 - cos * cos).clamp_min(1e-12))


class MarginHead(nn.Module):
    """Base class: owns the proxies ``W`` and turns cosines into margin logits."""

    norm_aware = False

    def __init__(self, embedding_size: int, num_classes: int, s: float = 64.0):
        super().__init__()
        if embedding_size < 1 or num_classes < 2:
            raise ValueError(
                f"a head needs embedding_size >= 1 and num_classes >= 2, got "
                f"{embedding_size} and {num_classes}"
            )
        if s <= 0:
            raise ValueError(f"the logit scale s must be positive, got {s}")
        self.s = float(s)
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_size))
        nn.init.xavier_uniform_(self.weight)

    def cosine(self, x: torch.Tensor) -> torch.Tensor:
        """cos θ_ij = f_i · w_j for every sample i and proxy j."""
        return F.normalize(x, dim=1) @ F.normalize(self.weight, dim=1).t()

    def target_logit(self, cos_y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """ψ(θ_y) for each sample; overridden by every head."""
        raise NotImplementedError

    def regularizer(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(())

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> HeadOutput:
        cos = self.cosine(x)
        cos_y = cos.gather(1, labels[:, None]).squeeze(1)
        psi = self.target_logit(cos_y, x)
        logits = cos.scatter(1, labels[:, None], psi[:, None])
        return HeadOutput(logits, self.regularizer(x))

    def modulate_extra(self, extra: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor):
        """Hook for heads that re-weight negatives (CurricularFace); identity otherwise."""
        return extra


class ArcFace(MarginHead):
    """ψ(θ) = cos(θ + m) (additive angular margin).

    ``mode="official"`` keeps cos(θ + m) for every θ, as the UNPG code does, but computes it as
    cos θ cos m − sin θ sin m so no ``acos`` can return NaN. ``mode="insightface"`` switches to
    cos θ − m sin m where θ + m > π, which keeps ψ monotone in θ.
    """

    def __init__(self, embedding_size, num_classes, s=64.0, m=0.5, mode="official"):
        super().__init__(embedding_size, num_classes, s)
        if not 0 <= m < math.pi / 2:
            raise ValueError(f"ArcFace margin m must lie in [0, pi/2), got {m}")
        if mode not in ("official", "insightface"):
            raise ValueError(f"ArcFace mode must be 'official' or 'insightface', got {mode!r}")
        self.m, self.mode = float(m), mode

    def target_logit(self, cos_y, x):
        psi = cos_y * math.cos(self.m) - _sin_from_cos(cos_y) * math.sin(self.m)
        if self.mode == "insightface":
            beyond = cos_y <= math.cos(math.pi - self.m)  # θ + m ≥ π
            psi = torch.where(beyond, cos_y - self.m * math.sin(self.m), psi)
        return psi


class CosFace(MarginHead):
    """ψ(θ) = cos θ − m (additive cosine margin)."""

    def __init__(self, embedding_size, num_classes, s=64.0, m=0.35):
        super().__init__(embedding_size, num_classes, s)
        if not 0 <= m < 2:
            raise ValueError(f"CosFace margin m must lie in [0, 2), got {m}")
        self.m = float(m)

    def target_logit(self, cos_y, x):
        return cos_y - self.m


class SphereFace(MarginHead):
    """ψ(θ) = (−1)^k cos(mθ) − 2k for θ ∈ [kπ/m, (k+1)π/m]: the monotone extension of cos(mθ)."""

    def __init__(self, embedding_size, num_classes, s=64.0, m=4):
        super().__init__(embedding_size, num_classes, s)
        if int(m) != m or m < 1:
            raise ValueError(f"SphereFace margin m must be a positive integer, got {m}")
        self.m = int(m)

    def target_logit(self, cos_y, x):
        theta = torch.acos(_clamp_cos(cos_y))
        k = torch.floor(self.m * theta / math.pi).detach()
        sign = 1.0 - 2.0 * torch.remainder(k, 2.0)
        return sign * torch.cos(self.m * theta) - 2.0 * k


class MagFace(MarginHead):
    """ψ = cos(θ + m(a)) where cos θ > 0 (easy margin), else cos θ; plus λ_g·mean g(a).

    a = clamp(||x||, l_a, u_a); m(a) = (u_m − l_m)/(u_a − l_a)·(a − l_a) + l_m;
    g(a) = a/u_a² + 1/a.
    """

    norm_aware = True

    def __init__(
        self,
        embedding_size,
        num_classes,
        s=64.0,
        l_m=0.45,
        u_m=0.8,
        l_a=10.0,
        u_a=110.0,
        lambda_g=35.0,
    ):
        super().__init__(embedding_size, num_classes, s)
        if not (0 < l_a < u_a and 0 <= l_m <= u_m < math.pi / 2 and lambda_g >= 0):
            raise ValueError(
                "MagFace needs 0 < l_a < u_a, 0 <= l_m <= u_m < pi/2 and lambda_g >= 0, got "
                f"l_a={l_a}, u_a={u_a}, l_m={l_m}, u_m={u_m}, lambda_g={lambda_g}"
            )
        self.l_m, self.u_m, self.l_a, self.u_a, self.lambda_g = l_m, u_m, l_a, u_a, lambda_g

    def magnitude(self, x):
        return x.norm(dim=1).clamp(self.l_a, self.u_a)

    def margin(self, a):
        return (self.u_m - self.l_m) / (self.u_a - self.l_a) * (a - self.l_a) + self.l_m

    def target_logit(self, cos_y, x):
        m = self.margin(self.magnitude(x))
        psi = cos_y * torch.cos(m) - _sin_from_cos(cos_y) * torch.sin(m)
        return torch.where(cos_y > 0, psi, cos_y)

    def regularizer(self, x):
        a = self.magnitude(x)
        return self.lambda_g * (a / self.u_a**2 + 1.0 / a).mean()


class AdaFace(MarginHead):
    """ψ = cos(clip(θ_y − m·ms, ε, π − ε)) − (m + m·ms), ms = clip(h·(||x|| − μ)/(σ + ε), −1, 1).

    μ and σ are EMAs (rate ``t_alpha``) of the batch mean and std of the detached norms, updated
    in training mode before they are used, as in the AdaFace code.
    """

    norm_aware = True

    def __init__(self, embedding_size, num_classes, s=64.0, m=0.4, h=0.333, t_alpha=0.01):
        super().__init__(embedding_size, num_classes, s)
        if not (0 <= m < 1 and h >= 0 and 0 < t_alpha <= 1):
            raise ValueError(
                f"AdaFace needs 0 <= m < 1, h >= 0, 0 < t_alpha <= 1; got m={m}, h={h}, "
                f"t_alpha={t_alpha}"
            )
        self.m, self.h, self.t_alpha = m, h, t_alpha
        self.register_buffer("batch_mean", torch.tensor(20.0))
        self.register_buffer("batch_std", torch.tensor(100.0))

    def margin_scaler(self, x):
        norms = x.detach().norm(dim=1).clamp(0.001, 100.0)
        if self.training:
            with torch.no_grad():
                std = norms.std() if norms.numel() > 1 else norms.new_zeros(())
                a = self.t_alpha
                self.batch_mean.copy_(a * norms.mean() + (1 - a) * self.batch_mean)
                self.batch_std.copy_(a * std + (1 - a) * self.batch_std)
        ms = (norms - self.batch_mean) / (self.batch_std + 1e-3)
        return (ms * self.h).clamp(-1.0, 1.0)

    def target_logit(self, cos_y, x):
        ms = self.margin_scaler(x).to(cos_y.dtype)
        theta = torch.acos(_clamp_cos(cos_y))
        theta = (theta - self.m * ms).clamp(_EPS, math.pi - _EPS)
        return torch.cos(theta) - (self.m + self.m * ms)


class CurricularFace(MarginHead):
    """ψ = cos(θ_y + m) (cos θ_y − m sin m beyond π − m); hard negatives (cos θ_j > ψ) become
    cos θ_j·(t + cos θ_j), with t an EMA (rate 0.01) of the mean target cosine."""

    def __init__(self, embedding_size, num_classes, s=64.0, m=0.5):
        super().__init__(embedding_size, num_classes, s)
        if not 0 <= m < math.pi / 2:
            raise ValueError(f"CurricularFace margin m must lie in [0, pi/2), got {m}")
        self.m = float(m)
        self.register_buffer("t", torch.zeros(()))

    def target_logit(self, cos_y, x):
        psi = cos_y * math.cos(self.m) - _sin_from_cos(cos_y) * math.sin(self.m)
        beyond = cos_y <= math.cos(math.pi - self.m)
        return torch.where(beyond, cos_y - self.m * math.sin(self.m), psi)

    def forward(self, x, labels):
        cos = self.cosine(x)
        cos_y = cos.gather(1, labels[:, None]).squeeze(1)
        psi = self.target_logit(cos_y, x)
        if self.training:
            with torch.no_grad():
                self.t.copy_(0.01 * cos_y.mean() + 0.99 * self.t)
        t = self.t.to(cos.dtype)
        hard = cos > psi[:, None]
        cos = torch.where(hard, cos * (t + cos), cos)
        logits = cos.scatter(1, labels[:, None], psi[:, None])
        return HeadOutput(logits, self.regularizer(x))

    def modulate_extra(self, extra, logits, labels):
        psi = logits.gather(1, labels[:, None])
        t = self.t.to(extra.dtype)
        return torch.where(extra > psi, extra * (t + extra), extra)


def build_head(name: str, embedding_size: int, num_classes: int, **kwargs) -> MarginHead:
    """Build a head by name; ``kwargs`` are its margin parameters (``s``, ``m``, ...)."""
    classes = {
        "arcface": ArcFace,
        "cosface": CosFace,
        "sphereface": SphereFace,
        "magface": MagFace,
        "adaface": AdaFace,
        "curricularface": CurricularFace,
    }
    if name not in classes:
        raise ValueError(f"unknown head {name!r}; choose one of {', '.join(HEADS)}")
    return classes[name](embedding_size, num_classes, **kwargs)
