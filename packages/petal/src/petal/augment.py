"""The teacher's test-time augmentations (the CoTTA/KATANA "strong" pipeline), batched.

One draw samples ONE set of random parameters and applies it to the whole batch (as torchvision
transforms do on a B×C×H×W tensor), except the additive noise, which is per element. All draws
of one step are computed together: the result is (n·B, C, H, W), draw-major. Randomness comes
from an explicit `torch.Generator`, so a run is reproducible and resumable.

Pipeline of one draw on images in [0, 1]: clip; colour jitter (brightness [0.6, 1.4], contrast
[0.7, 1.3], saturation [0.5, 1.5], hue [−0.06, 0.06], gamma [0.7, 1.3], in a random order);
edge padding by H/2; affine (rotation ±15°, translation ≤ 1/16 of the padded size, scale
[0.9, 1.1], bilinear); Gaussian blur (kernel 5, σ ∈ [0.001, 0.5]); centre crop to H×W;
horizontal flip (p = 0.5); Gaussian noise (std 0.005); clip.
Edge padding + affine + centre crop is computed as one `grid_sample` with border padding,
which samples exactly the replicated edge the padding would have produced.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

_GRAY = (0.2989, 0.587, 0.114)


def _uniform(gen: torch.Generator, n: int, low: float, high: float) -> Tensor:
    return low + (high - low) * torch.rand(n, generator=gen)


def _gray(x: Tensor) -> Tensor:
    r, g, b = x.unbind(dim=1)
    return (_GRAY[0] * r + _GRAY[1] * g + _GRAY[2] * b).unsqueeze(1)


def _blend(a: Tensor, b: Tensor, f: Tensor) -> Tensor:
    return (f * a + (1.0 - f) * b).clamp(0.0, 1.0)


_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def _shift_hue(x: Tensor, h: Tensor) -> Tensor:
    """Rotate the hue of RGB images by h (fraction of a turn) as a rotation of the IQ chroma
    plane (a linear stand-in for the HSV round trip; see README, deviations)."""
    to_yiq = _RGB_TO_YIQ.to(x)
    yiq = torch.einsum("ij,bjhw->bihw", to_yiq, x)
    angle = 2.0 * math.pi * h
    cos, sin = torch.cos(angle), torch.sin(angle)
    i, q = yiq[:, 1:2], yiq[:, 2:3]
    yiq = torch.cat([yiq[:, 0:1], cos * i - sin * q, sin * i + cos * q], dim=1)
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(to_yiq), yiq).clamp(0.0, 1.0)


def _color_jitter(x: Tensor, gen: torch.Generator, n: int, batch: int) -> Tensor:
    """Per-draw jitter factors, five ops in a per-draw random order (x is draw-major)."""
    per_image = lambda f: f.repeat_interleave(batch).view(-1, 1, 1, 1).to(x.device)  # noqa: E731
    factors = [
        per_image(_uniform(gen, n, 0.6, 1.4)),  # brightness
        per_image(_uniform(gen, n, 0.7, 1.3)),  # contrast
        per_image(_uniform(gen, n, 0.5, 1.5)),  # saturation
        per_image(_uniform(gen, n, -0.06, 0.06)),  # hue
        per_image(_uniform(gen, n, 0.7, 1.3)),  # gamma
    ]
    orders = torch.stack([torch.randperm(5, generator=gen) for _ in range(n)])
    ops = [
        lambda im, f: (im * f).clamp(0.0, 1.0),
        lambda im, f: _blend(im, _gray(im).mean(dim=(1, 2, 3), keepdim=True), f),
        lambda im, f: _blend(im, _gray(im), f),
        lambda im, f: _shift_hue(im, f),
        lambda im, f: im.clamp(min=1e-8) ** f,
    ]
    draw_of_image = torch.arange(n).repeat_interleave(batch)
    for position in range(5):
        op_of_image = orders[draw_of_image, position].to(x.device)
        out = x.clone()
        for k, op in enumerate(ops):
            idx = (op_of_image == k).nonzero().squeeze(1)
            if idx.numel():
                out[idx] = op(x[idx], factors[k][idx])
        x = out
    return x


def _affine_theta(gen: torch.Generator, n: int, size: int, margin: int) -> Tensor:
    """Sampling matrices for affine_grid: the padded-image affine of each draw, read back on
    a (size + 2·margin) output window centred on the image."""
    padded = 2 * size
    max_shift = padded / 16.0
    angle = _uniform(gen, n, -15.0, 15.0) * math.pi / 180.0
    tx = torch.round(_uniform(gen, n, -max_shift, max_shift))
    ty = torch.round(_uniform(gen, n, -max_shift, max_shift))
    scale = _uniform(gen, n, 0.9, 1.1)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # Inverse map p_in = R⁻¹ (p_out − t) / s, in pixels about the centre, then normalised.
    inv = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)
    half_out, half_in = (size + 2 * margin) / 2.0, size / 2.0
    lin = inv * (half_out / (half_in * scale)).view(-1, 1, 1)
    shift = -(inv @ torch.stack([tx, ty], -1).unsqueeze(-1)).squeeze(-1)
    shift = shift / (half_in * scale).view(-1, 1)
    return torch.cat([lin, shift.unsqueeze(-1)], dim=-1)


def _gaussian_blur(x: Tensor, sigma: Tensor, batch: int) -> Tensor:
    """5-tap Gaussian blur with a per-draw σ, 'valid' convolution (input carries a 2-px rim)."""
    taps = torch.arange(-2, 3, dtype=x.dtype)
    kernel = torch.exp(-(taps**2) / (2 * sigma.view(-1, 1) ** 2))
    kernel = kernel / kernel.sum(dim=1, keepdim=True)
    nb, c, h, w = x.shape
    k = kernel.repeat_interleave(batch * c, dim=0)
    flat = x.reshape(1, nb * c, h, w)
    flat = F.conv2d(flat, k.view(-1, 1, 1, 5), groups=nb * c)
    flat = F.conv2d(flat, k.view(-1, 1, 5, 1), groups=nb * c)
    return flat.view(nb, c, h - 4, w - 4)


def augment_batch(x: Tensor, n: int, gen: torch.Generator, noise_std: float = 0.005) -> Tensor:
    """n random draws of the strong augmentation of x (B, C, H, W); returns (n·B, C, H, W)."""
    batch, _, size, _ = x.shape
    margin = 2  # room for the 5-tap blur, so the crop never sees padding
    x = x.clamp(0.0, 1.0).repeat(n, 1, 1, 1)

    x = _color_jitter(x, gen, n, batch)

    theta = _affine_theta(gen, n, size, margin).repeat_interleave(batch, dim=0).to(x)
    grid = F.affine_grid(
        theta, [n * batch, 3, size + 2 * margin, size + 2 * margin], align_corners=False
    )
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    x = _gaussian_blur(x, _uniform(gen, n, 0.001, 0.5).to(x), batch)

    flip = (torch.rand(n, generator=gen) < 0.5).repeat_interleave(batch).view(-1, 1, 1, 1)
    flip = flip.to(x.device)
    x = torch.where(flip, x.flip(-1), x)
    noise = (torch.randn(x.shape, generator=gen) * noise_std).to(x)
    return (x + noise).clamp(0.0, 1.0)
