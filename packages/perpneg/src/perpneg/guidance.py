"""Guidance rules on noise predictions: CFG, the two negative-prompt baselines and Perp-Neg.

All functions take noise predictions of shape (B, ...) and return the guided prediction of the
same shape. Symbols follow the spec (section 1):

| symbol   | meaning                                                              |
|----------|----------------------------------------------------------------------|
| eps_u    | ε(x_t, ∅), prediction for the empty (unconditional) prompt            |
| eps_pos  | ε(x_t, c_pos), prediction for the main prompt                         |
| eps_negs | ε(x_t, c_neg_i), predictions for the K negative prompts               |
| s        | global guidance scale                                                 |
| w_i      | relative weight of negative i (≥ 0); its effective strength is s·w_i  |
| Δ_i      | guidance direction ε(x_t, c_i) − ε_u                                  |

Every rule here is parameterisation-invariant: at fixed x_t, differences of ε-, x0- and
v-predictions are scalar multiples of each other, so the functions may be applied to any of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

Weight = float | torch.Tensor

LEGACY_MODES = ("official_2d", "stable_dreamfusion")


def _per_sample(weight: Weight, like: torch.Tensor) -> torch.Tensor | float:
    """A scalar stays a scalar; a (B,) tensor is shaped to broadcast against `like`."""
    if isinstance(weight, torch.Tensor) and weight.ndim > 0:
        if weight.shape[0] != like.shape[0]:
            raise ValueError(
                f"a per-sample weight has {weight.shape[0]} entries but the batch has "
                f"{like.shape[0]} samples; give one weight per sample or a single number"
            )
        return weight.to(like).reshape(-1, *([1] * (like.ndim - 1)))
    return float(weight)


def inner(a: torch.Tensor, b: torch.Tensor, per_sample: bool = True) -> torch.Tensor:
    """⟨a, b⟩ over all elements of one sample (shape (B, 1, ..., 1)), or over the whole batch."""
    if per_sample:
        return (a * b).flatten(1).sum(1).reshape(-1, *([1] * (a.ndim - 1)))
    return (a * b).sum()


def perp_component(
    a: torch.Tensor, b: torch.Tensor, per_sample: bool = True, eps: float | None = 1e-6
) -> torch.Tensor:
    """perp(a, b) = a − (⟨a, b⟩ / ‖b‖²) b, the part of `a` orthogonal to `b` (Eq. of §1.5).

    The coefficient is computed in float32 at least (float64 stays float64) so that fp16
    predictions do not lose the projection; `eps` floors ‖b‖² (None = no floor, as the
    official 2D code). With b = 0 and a floor, perp(a, 0) = a.
    """
    work = torch.promote_types(a.dtype, torch.float32)
    a32, b32 = a.to(work), b.to(work)
    norm_sq = inner(b32, b32, per_sample)
    if eps is not None:
        norm_sq = norm_sq.clamp_min(eps)
    coef = inner(a32, b32, per_sample) / norm_sq
    return (a32 - coef * b32).to(a.dtype)


def cfg(eps_u: torch.Tensor, eps_pos: torch.Tensor, s: float) -> torch.Tensor:
    """Classifier-free guidance in the uncond form: ε̂ = ε_u + s·Δ_pos."""
    return eps_u + s * (eps_pos - eps_u)


def sd_negative(eps_pos: torch.Tensor, eps_neg: torch.Tensor, s: float) -> torch.Tensor:
    """Stable Diffusion's negative prompt (the negative replaces ∅): ε̂ = ε_neg + s(ε_pos − ε_neg).

    Around the true ε_u this equals ε_u + s·Δ_pos − (s − 1)·Δ_neg (spec §1.3, item 1).
    """
    return eps_neg + s * (eps_pos - eps_neg)


def composable(
    eps_u: torch.Tensor, eps_conds: Sequence[torch.Tensor], weights: Sequence[Weight]
) -> torch.Tensor:
    """Composable diffusion (Liu et al. 2022): ε̂ = ε_u + Σ_i w_i Δ_i, raw signed weights."""
    _check_lengths(eps_conds, weights, "conditions")
    out = eps_u.clone()
    for eps_c, w in zip(eps_conds, weights, strict=True):
        out = out + _per_sample(w, eps_u) * (eps_c - eps_u)
    return out


def composable_not(
    eps_u: torch.Tensor,
    eps_pos: torch.Tensor,
    eps_negs: Sequence[torch.Tensor],
    neg_weights: Sequence[Weight],
    s: float,
) -> torch.Tensor:
    """Composable NOT in the paper's convention: ε̂ = ε_u + s(Δ_pos − Σ_i w_i Δ_neg_i)."""
    _check_lengths(eps_negs, neg_weights, "negative predictions")
    weights = [s] + [-s * _per_sample(w, eps_u) for w in neg_weights]
    return composable(eps_u, [eps_pos, *eps_negs], weights)


def perpneg(
    eps_u: torch.Tensor,
    eps_pos: torch.Tensor,
    eps_negs: Sequence[torch.Tensor],
    neg_weights: Sequence[Weight],
    s: float,
    extra_pos: Sequence[torch.Tensor] = (),
    extra_pos_weights: Sequence[Weight] = (),
    per_sample: bool = True,
    eps: float | None = 1e-6,
    legacy: str | None = None,
    main_weight: float = 1.0,
) -> torch.Tensor:
    """Perp-Neg (spec §1.5, the paper's Algorithm 1):

        ε̂ = ε_u + s·[Δ_pos + Σ_j v_j perp(Δ_pos_j, Δ_pos) − Σ_i w_i perp(Δ_neg_i, Δ_pos)]

    Each negative (and extra positive) is projected against the main direction Δ_pos only;
    negatives are not orthogonalised against each other. `neg_weights` are w_i ≥ 0 (float or
    a (B,) tensor for per-sample weights, as in score distillation with view-dependent
    weights). `per_sample` chooses the inner product of one sample (the default) or of the whole
    batch. `legacy="official_2d"` reproduces the official 2D pipeline: batch-global inner
    product, no floor on ‖Δ_pos‖², and the j-th extra positive weighted by the weight list entry
    j−1 (the first one takes `main_weight`). `legacy="stable_dreamfusion"` is per-sample with a
    1e-6 floor, which is the default behaviour.
    """
    _check_lengths(eps_negs, neg_weights, "negative predictions")
    _check_lengths(extra_pos, extra_pos_weights, "extra positive predictions")
    if legacy is not None:
        if legacy not in LEGACY_MODES:
            raise ValueError(f"unknown legacy mode {legacy!r}; choose one of {LEGACY_MODES}")
        if legacy == "official_2d":
            per_sample, eps = False, None
            extra_pos_weights = [main_weight, *extra_pos_weights][: len(extra_pos)]
        else:
            per_sample, eps = True, 1e-6
    delta_pos = eps_pos - eps_u
    bracket = delta_pos.clone()

    # Extra positives: only their part orthogonal to the main direction is added.
    for eps_p, v in zip(extra_pos, extra_pos_weights, strict=True):
        bracket = bracket + _per_sample(v, eps_u) * perp_component(
            eps_p - eps_u, delta_pos, per_sample, eps
        )

    # Eq. of §1.5: subtract the perpendicular component of every negative direction.
    for eps_n, w in zip(eps_negs, neg_weights, strict=True):
        bracket = bracket - _per_sample(w, eps_u) * perp_component(
            eps_n - eps_u, delta_pos, per_sample, eps
        )
    return eps_u + s * bracket


def _check_lengths(items: Sequence, weights: Sequence, what: str) -> None:
    if len(items) != len(weights):
        raise ValueError(
            f"got {len(items)} {what} but {len(weights)} weights; give exactly one weight per "
            f"prompt"
        )


METHODS = ("cfg", "sd_negative", "composable", "perpneg")


def combine(
    method: str,
    eps_u: torch.Tensor,
    eps_pos: torch.Tensor,
    eps_negs: Sequence[torch.Tensor],
    neg_weights: Sequence[Weight],
    s: float,
    **perpneg_kwargs,
) -> torch.Tensor:
    """Apply one of `METHODS` by name to the branch predictions of one denoising step.

    For `sd_negative` with several negatives, their predictions are averaged with the given
    weights (normalised to sum 1) before replacing ε_u, which is what the official `cebm` path
    reduces to; with no negatives it is plain CFG.
    """
    if method == "cfg":
        return cfg(eps_u, eps_pos, s)
    if method == "sd_negative":
        if not eps_negs:
            return cfg(eps_u, eps_pos, s)
        _check_lengths(eps_negs, neg_weights, "negative predictions")
        total = sum(float(w) for w in neg_weights)
        if total <= 0:
            raise ValueError("sd_negative needs negative weights with a positive sum")
        eps_neg = sum(float(w) / total * e for w, e in zip(neg_weights, eps_negs, strict=True))
        return sd_negative(eps_pos, eps_neg, s)
    if method == "composable":
        return composable_not(eps_u, eps_pos, eps_negs, neg_weights, s)
    if method == "perpneg":
        return perpneg(eps_u, eps_pos, eps_negs, neg_weights, s, **perpneg_kwargs)
    raise ValueError(f"unknown guidance method {method!r}; choose one of {METHODS}")
