"""The teacher's test-time augmentations (the CoTTA/KATANA "strong" pipeline).

One draw samples ONE set of random parameters and applies it to the whole batch (as torchvision
transforms do on a B×C×H×W tensor), except the additive noise, which is per element. All
randomness comes from an explicit `torch.Generator`, so a run is reproducible and resumable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from torch import Tensor
from torchvision.transforms import InterpolationMode


def _uniform(gen: torch.Generator, low: float, high: float) -> float:
    return float(low + (high - low) * torch.rand((), generator=gen))


def color_jitter(x: Tensor, gen: torch.Generator) -> Tensor:
    """Brightness, contrast, saturation, hue and gamma, factors drawn uniformly, random order."""
    ops = [
        lambda im, f: TF.adjust_brightness(im, f),
        lambda im, f: TF.adjust_contrast(im, f),
        lambda im, f: TF.adjust_saturation(im, f),
        lambda im, f: TF.adjust_hue(im, f),
        lambda im, f: TF.adjust_gamma(im.clamp(min=1e-8), f),
    ]
    ranges = [(0.6, 1.4), (0.7, 1.3), (0.5, 1.5), (-0.06, 0.06), (0.7, 1.3)]
    factors = [_uniform(gen, lo, hi) for lo, hi in ranges]
    for i in torch.randperm(len(ops), generator=gen).tolist():
        x = ops[i](x, factors[i])
    return x


def augment_once(x: Tensor, gen: torch.Generator, noise_std: float = 0.005) -> Tensor:
    """One random draw of the strong augmentation on a batch in [0, 1], shape (B, C, H, W)."""
    size = x.shape[-1]
    pad = size // 2

    # 1-2. clip, then colour jitter
    x = color_jitter(x.clamp(0.0, 1.0), gen)

    # 3. edge padding so that the affine warp does not pull in black corners
    x = F.pad(x, (pad, pad, pad, pad), mode="replicate")

    # 4. affine: rotation ±15°, translation up to 1/16 of the padded size, scale 0.9-1.1
    padded = x.shape[-1]
    max_shift = padded / 16.0
    angle = _uniform(gen, -15.0, 15.0)
    tx = round(_uniform(gen, -max_shift, max_shift))
    ty = round(_uniform(gen, -max_shift, max_shift))
    scale = _uniform(gen, 0.9, 1.1)
    x = TF.affine(
        x,
        angle=angle,
        translate=[tx, ty],
        scale=scale,
        shear=[0.0, 0.0],
        interpolation=InterpolationMode.BILINEAR,
    )

    # 5-6. Gaussian blur (kernel 5, σ ∈ [0.001, 0.5]) and centre crop back to H×W
    sigma = _uniform(gen, 0.001, 0.5)
    x = TF.gaussian_blur(x, kernel_size=[5, 5], sigma=[sigma, sigma])
    x = TF.center_crop(x, [size, size])

    # 7-9. horizontal flip (p = 0.5), per-element Gaussian noise, clip
    if torch.rand((), generator=gen) < 0.5:
        x = x.flip(-1)
    noise = torch.randn(x.shape, generator=gen, dtype=x.dtype) * noise_std
    return (x + noise.to(x.device)).clamp(0.0, 1.0)
