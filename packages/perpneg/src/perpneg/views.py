"""The 2D → 3D view scheme: view prompts, embedding interpolation by azimuth, negative weights.

Azimuth φ is in degrees, 0 = front, ±180 = back; only |φ| matters (spec §1.6).

| symbol | meaning                                                                     |
|--------|-----------------------------------------------------------------------------|
| φ      | camera azimuth in degrees                                                     |
| r      | interpolation ratio: front half 1 = front, 0 = side; back half 1 = side, 0 = back |
| n      | stable-dreamfusion `negative_w` (≤ 0, default −2)                            |
| a_f    | front decay factor (default 2); a_s side decay factor (default 10)           |
| f      | threestudio shifted exponential f(r) = a·exp(−b·r) + c                      |

Weights are returned in the signed convention of the 3D code (≤ 0); `perpneg.guidance.perpneg`
takes their negation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

VIEWS = ("front", "side", "back")


def view_prompts(prompt: str) -> dict[str, str]:
    """The suffix form used by stable-dreamfusion and threestudio: "P, front view", ..."""
    return {view: f"{prompt}, {view} view" for view in VIEWS}


@dataclass(frozen=True)
class ViewMix:
    """Positive embedding mix and the two negatives for one azimuth.

    The positive is `r·first + (1 − r)·second`; `negatives` names the two negated views in the
    order their weights are given.
    """

    first: str
    second: str
    r: float
    negatives: tuple[str, str]
    weights: tuple[float, float]


def interp_ratio(azimuth: float) -> tuple[bool, float]:
    """(front_half, r) for an azimuth; front half is |φ| < 90."""
    phi = abs(float(azimuth))
    if phi > 180:
        raise ValueError(f"azimuth {azimuth} is outside [-180, 180] degrees")
    if phi < 90:
        return True, 1.0 - phi / 90.0
    return False, 1.0 - (phi - 90.0) / 90.0


def weights_stable_dreamfusion(
    azimuth: float, negative_w: float = -2.0, front_decay: float = 2.0, side_decay: float = 10.0
) -> tuple[float, float]:
    """(w_front, w_side) of the official stable-dreamfusion schedule (spec §1.6a)."""
    front_half, r = interp_ratio(azimuth)
    if front_half:
        w_front = 0.0 if r > 0.8 else negative_w * math.exp(-front_decay * r)
        w_side = 0.0 if r < 0.2 else negative_w * math.exp(-side_decay * (1.0 - r))
    else:
        w_side = 0.0 if r > 0.8 else negative_w / 2.0 * math.exp(-side_decay * r)
        w_front = negative_w
    return w_front, w_side


THREESTUDIO_DEFAULTS = {
    "f_fs": (4.0, 0.5, -2.426),
    "f_sf": (4.0, 0.5, -2.426),
    "f_sb": (1.0, 0.5, -0.606),
    "f_fsb": (1.0, 0.5, 0.967),
}


def _shifted_exp(params: tuple[float, float, float], r: float) -> float:
    a, b, c = params
    return a * math.exp(-b * r) + c


def weights_threestudio(
    azimuth: float, **params: tuple[float, float, float]
) -> tuple[float, float]:
    """(w_front, w_side) of threestudio's `use_perp_neg` schedule (spec §1.6b)."""
    unknown = set(params) - set(THREESTUDIO_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown threestudio weight functions {sorted(unknown)}")
    f = {**THREESTUDIO_DEFAULTS, **params}
    front_half, r = interp_ratio(azimuth)
    if front_half:
        return -_shifted_exp(f["f_fs"], r), -_shifted_exp(f["f_sf"], 1.0 - r)
    return -_shifted_exp(f["f_fsb"], r), -_shifted_exp(f["f_sb"], r)


SCHEDULES = {"stable_dreamfusion": weights_stable_dreamfusion, "threestudio": weights_threestudio}


def view_mix(azimuth: float, schedule: str = "stable_dreamfusion", **kwargs) -> ViewMix:
    """Positive mix and negative view weights for one azimuth under a named schedule."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown view schedule {schedule!r}; choose one of {sorted(SCHEDULES)}")
    front_half, r = interp_ratio(azimuth)
    w_front, w_side = SCHEDULES[schedule](azimuth, **kwargs)
    if front_half:
        return ViewMix("front", "side", r, ("front", "side"), (w_front, w_side))
    return ViewMix("side", "back", r, ("side", "front"), (w_side, w_front))


def interp_embedding(
    embeds: dict[str, torch.Tensor], azimuth: float
) -> tuple[torch.Tensor, ViewMix]:
    """Linear mix of the view prompt embeddings for an azimuth (no re-encoding)."""
    mix = view_mix(azimuth)
    return mix.r * embeds[mix.first] + (1.0 - mix.r) * embeds[mix.second], mix
