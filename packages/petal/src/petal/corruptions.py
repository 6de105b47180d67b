"""The 15 CIFAR-10-C corruptions at 5 severities, with the CIFAR-10-C constants.

Written from the description of Hendrycks & Dietterich's `make_cifar_c.py` (spec section 8.2),
in NumPy/SciPy/Pillow without OpenCV or ImageMagick. Every function maps a float batch
(N, H, W, 3) in [0, 1] and a `numpy.random.Generator` to a float batch in [0, 1]; `corrupt`
is the entry point and accepts uint8 NHWC arrays or float NCHW tensors, deterministic under a
seed. Frost uses a procedurally generated ice texture instead of the six photographs of the
original (README, deviations).
"""

from __future__ import annotations

import io

import numpy as np
import torch
from matplotlib.colors import hsv_to_rgb, rgb_to_hsv
from PIL import Image
from scipy import ndimage

from petal.textures import frost_texture, plasma_fractal

CORRUPTIONS = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
    "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
    "elastic_transform", "pixelate", "jpeg_compression",
)  # fmt: skip
"""The standard continual order (CIFAR-10-C, the order of the paper's tables)."""

SEVERITY = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
    "shot_noise": (500, 250, 100, 75, 50),
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),
    "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
    "glass_blur": ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
    "motion_blur": ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),
    "zoom_blur": tuple(np.arange(1, 1 + top, 0.01) for top in (0.06, 0.11, 0.16, 0.21, 0.26)),
    "snow": (
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9), (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
    ),
    "frost": ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)),
    "fog": ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
    "elastic_transform": (
        (0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03)
    ),
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),
    "jpeg_compression": (80, 65, 58, 50, 40),
}  # fmt: skip


# ---------------------------------------------------------------------------- noise
def gaussian_noise(x, c, rng):
    return x + rng.normal(size=x.shape, scale=c)


def shot_noise(x, c, rng):
    return rng.poisson(x * c) / c


def impulse_noise(x, c, rng):
    """Salt and pepper on a share c of the elements (half salt, half pepper)."""
    hit = rng.random(x.shape) < c
    salt = rng.random(x.shape) < 0.5
    return np.where(hit, salt.astype(x.dtype), x)


# ---------------------------------------------------------------------------- blur
def _disk(radius: float, alias_blur: float) -> np.ndarray:
    half = 8 if radius <= 8 else int(np.ceil(radius))
    ax = np.arange(-half, half + 1)
    xx, yy = np.meshgrid(ax, ax)
    kernel = (xx**2 + yy**2 <= radius**2).astype(np.float64)
    kernel /= kernel.sum()
    return ndimage.gaussian_filter(kernel, alias_blur, truncate=1.0 / max(alias_blur, 1e-3))


def defocus_blur(x, c, rng):
    kernel = _disk(*c)[None, :, :, None]
    return ndimage.convolve(x, kernel, mode="mirror")


def _gaussian(x, sigma):
    return ndimage.gaussian_filter(x, sigma=(0, sigma, sigma, 0), mode="nearest")


def glass_blur(x, c, rng):
    """Blur, then locally shuffle pixels by swapping each with a random neighbour, then blur."""
    sigma, shift, iterations = c
    x = np.floor(np.clip(_gaussian(x, sigma), 0, 1) * 255) / 255
    n, h, w, _ = x.shape
    rows = np.arange(n)
    for _ in range(iterations):
        for i in range(h - shift, shift, -1):
            for j in range(w - shift, shift, -1):
                dy, dx = rng.integers(-shift, shift, size=(2, n), endpoint=False)
                a = x[rows, i, j].copy()
                x[rows, i, j] = x[rows, i + dy, j + dx]
                x[rows, i + dy, j + dx] = a
    return _gaussian(x, sigma)


def _shift(img: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Translate an (..., H, W, C) image by (dy, dx) with edge replication."""
    h, w = img.shape[-3], img.shape[-2]
    rows = np.clip(np.arange(h) - dy, 0, h - 1)
    cols = np.clip(np.arange(w) - dx, 0, w - 1)
    return img[..., rows, :, :][..., :, cols, :]


def _motion(img: np.ndarray, radius: float, sigma: float, angle_deg: float) -> np.ndarray:
    """One-sided motion blur along a direction, Gaussian-weighted taps (ImageMagick-like)."""
    width = int(2 * radius + 1)
    taps = np.arange(width)
    weights = np.exp(-(taps**2) / (2 * sigma**2))
    weights /= weights.sum()
    theta = np.deg2rad(angle_deg)
    out = np.zeros_like(img)
    for i, wgt in zip(taps, weights, strict=True):
        out += wgt * _shift(img, int(round(i * np.sin(theta))), int(round(i * np.cos(theta))))
    return out


def motion_blur(x, c, rng):
    angles = rng.uniform(-45, 45, size=len(x))
    return np.stack([_motion(img, c[0], c[1], a) for img, a in zip(x, angles, strict=True)])


def _zoom_center(x: np.ndarray, factor: float) -> np.ndarray:
    """Zoom a batch by `factor` about the image centre, keeping the size (bilinear)."""
    t = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    theta = torch.tensor([[1 / factor, 0, 0], [0, 1 / factor, 0]], dtype=t.dtype)
    grid = torch.nn.functional.affine_grid(theta.expand(len(t), 2, 3), t.shape, align_corners=False)
    out = torch.nn.functional.grid_sample(
        t, grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    return out.numpy().transpose(0, 2, 3, 1)


def zoom_blur(x, c, rng):
    out = np.zeros_like(x)
    for factor in c:
        out += _zoom_center(x, float(factor))
    return (x + out) / (len(c) + 1)


# ---------------------------------------------------------------------------- weather
def snow(x, c, rng):
    mean, std, zoom, threshold, radius, sigma, blend = c
    n, h, w, _ = x.shape
    flakes = rng.normal(loc=mean, scale=std, size=(n, h, w, 1))
    flakes = _zoom_center(flakes, zoom)
    flakes[flakes < threshold] = 0
    angles = rng.uniform(-135, -45, size=n)
    flakes = np.stack(
        [_motion(np.clip(f, 0, 1), radius, sigma, a) for f, a in zip(flakes, angles, strict=True)]
    )
    gray = (x @ np.array([0.299, 0.587, 0.114]))[..., None]
    x = blend * x + (1 - blend) * np.maximum(x, gray * 1.5 + 0.5)
    return x + flakes + np.rot90(flakes, k=2, axes=(1, 2))


def frost(x, c, rng):
    n, h, w, _ = x.shape
    out = np.empty_like(x)
    for k in range(n):
        tex = frost_texture(int(rng.integers(6)))
        top = rng.integers(0, tex.shape[0] - h + 1)
        left = rng.integers(0, tex.shape[1] - w + 1)
        out[k] = c[0] * x[k] + c[1] * tex[top : top + h, left : left + w]
    return out


def fog(x, c, rng):
    n, h, w, _ = x.shape
    peak = x.max(axis=(1, 2, 3), keepdims=True)
    haze = np.stack([plasma_fractal(32, c[1], rng)[:h, :w] for _ in range(n)])[..., None]
    return (x + c[0] * haze) * peak / (peak + c[0])


# ---------------------------------------------------------------------------- digital
def brightness(x, c, rng):
    hsv = rgb_to_hsv(np.clip(x, 0, 1))
    hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
    return hsv_to_rgb(hsv)


def contrast(x, c, rng):
    means = x.mean(axis=(1, 2), keepdims=True)
    return (x - means) * c + means


def _affine_from_points(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2×3 affine map sending three (x, y) points src to dst."""
    a = np.hstack([src, np.ones((3, 1))])
    return np.linalg.solve(a, dst).T


def elastic_transform(x, c, rng):
    """Random affine jitter of three points, then a smoothed random displacement field."""
    n, h, w, _ = x.shape
    alpha, sigma, jitter = (v * h for v in c)
    centre = np.array([w, h], dtype=np.float64) // 2
    square = min(h, w) // 3
    src = np.array([centre + square, [centre[0] + square, centre[1] - square], centre - square])
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    out = np.empty_like(x)
    for k in range(n):
        dst = src + rng.uniform(-jitter, jitter, size=src.shape)
        # inverse map: output pixel (x, y) samples the input at A⁻¹[(x, y) − b]
        m = _affine_from_points(src, dst)
        inv = np.linalg.inv(m[:, :2])
        off = -inv @ m[:, 2]
        px = inv[0, 0] * xx + inv[0, 1] * yy + off[0]
        py = inv[1, 0] * xx + inv[1, 1] * yy + off[1]
        dx = ndimage.gaussian_filter(rng.uniform(-1, 1, (h, w)), sigma, mode="reflect") * alpha
        dy = ndimage.gaussian_filter(rng.uniform(-1, 1, (h, w)), sigma, mode="reflect") * alpha
        for ch in range(x.shape[3]):
            warped = ndimage.map_coordinates(x[k, :, :, ch], [py, px], order=1, mode="mirror")
            out[k, :, :, ch] = ndimage.map_coordinates(
                warped, [yy + dy, xx + dx], order=1, mode="mirror"
            )
    return out


def _to_pil(img: np.ndarray) -> Image.Image:
    return Image.fromarray(np.uint8(np.clip(img, 0, 1) * 255))


def pixelate(x, c, rng):
    h, w = x.shape[1:3]
    small = (int(w * c), int(h * c))
    return np.stack([
        np.asarray(_to_pil(img).resize(small, Image.BOX).resize((w, h), Image.BOX)) / 255.0
        for img in x
    ])  # fmt: skip


def jpeg_compression(x, c, rng):
    out = []
    for img in x:
        buf = io.BytesIO()
        _to_pil(img).save(buf, "JPEG", quality=int(c))
        out.append(np.asarray(Image.open(buf)) / 255.0)
    return np.stack(out)


def corrupt(images, name: str, severity: int, seed: int = 0):
    """Apply corruption `name` at `severity` (1-5) to a batch, deterministically under `seed`.

    `images` is either a uint8 array (N, H, W, 3) (returned as uint8, truncated like the
    original's `np.uint8`) or a float tensor (N, 3, H, W) in [0, 1] (returned as float32,
    quantised to 8 bits like the stored CIFAR-10-C files).
    """
    if name not in SEVERITY:
        raise ValueError(f"unknown corruption {name!r}; choose one of {CORRUPTIONS}")
    if severity not in (1, 2, 3, 4, 5):
        raise ValueError(f"severity must be 1..5, got {severity}")
    as_tensor = isinstance(images, torch.Tensor)
    if as_tensor:
        x = images.detach().cpu().double().permute(0, 2, 3, 1).numpy()
    else:
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError("expected uint8 images (N, H, W, 3) or a float tensor (N, 3, H, W)")
        x = images.astype(np.float64) / 255.0
    rng = np.random.default_rng([seed, CORRUPTIONS.index(name), severity])
    y = globals()[name](x.copy(), SEVERITY[name][severity - 1], rng)
    y8 = np.uint8(np.clip(y, 0, 1) * 255 + 1e-6)  # the epsilon undoes float round-off only
    if not as_tensor:
        return y8
    return torch.from_numpy(y8).permute(0, 3, 1, 2).float().div(255.0).contiguous()
