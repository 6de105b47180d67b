"""Embedded data: the CIFAR-shaped source sets and the corrupted lifelong test stream.

Two source sets need no download:
- `digits`: scikit-learn's 1,797 hand-written digits, upsampled to 32×32 and colourised per
  image (the shared core's `load_digits_images`);
- `shapes`: "Shapes-10", procedurally drawn 32×32 RGB images of ten shape classes with random
  position, size, rotation, colours, gradient background and texture noise, from a seed.
Like CIFAR-10-C, every domain of the stream re-uses the same test images, corrupted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw

from petal.corruptions import corrupt
from reprozoo.data import load_digits_images, stratified_split

SHAPE_CLASSES = (
    "circle", "square", "triangle", "star", "cross", "ring", "ellipse", "pentagon", "hexagon",
    "arrow",
)  # fmt: skip
_SUPER = 4  # supersampling factor of the rasteriser (anti-aliasing)


def _polygon(kind: str, rng: np.random.Generator) -> np.ndarray:
    """Unit-size outline (K, 2) of a shape class, before rotation/scale/translation."""
    if kind in ("triangle", "square", "pentagon", "hexagon"):
        k = {"triangle": 3, "square": 4, "pentagon": 5, "hexagon": 6}[kind]
        a = np.arange(k) * 2 * np.pi / k
        return np.stack([np.cos(a), np.sin(a)], 1)
    if kind == "star":
        a = np.arange(10) * np.pi / 5
        r = np.where(np.arange(10) % 2 == 0, 1.0, 0.42)
        return np.stack([r * np.cos(a), r * np.sin(a)], 1)
    if kind == "cross":
        t = 0.33
        return np.array([[-t, -1], [t, -1], [t, -t], [1, -t], [1, t], [t, t], [t, 1], [-t, 1],
                         [-t, t], [-1, t], [-1, -t], [-t, -t]])  # fmt: skip
    if kind == "arrow":
        return np.array([[-1, -0.3], [0.2, -0.3], [0.2, -0.75], [1, 0], [0.2, 0.75],
                         [0.2, 0.3], [-1, 0.3]])  # fmt: skip
    a = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    ratio = rng.uniform(0.45, 0.65) if kind == "ellipse" else 1.0
    return np.stack([np.cos(a), ratio * np.sin(a)], 1)


def _colour_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Foreground and background colours with a luminance gap of at least 0.25."""
    while True:
        fg, bg = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
        lum = np.array([0.299, 0.587, 0.114])
        if abs(fg @ lum - bg @ lum) > 0.25:
            return fg, bg


def _draw_shape(label: int, rng: np.random.Generator, size: int) -> np.ndarray:
    big = size * _SUPER
    kind = SHAPE_CLASSES[label]
    fg, bg = _colour_pair(rng)
    bg2 = np.clip(bg + rng.normal(0, 0.15, 3), 0, 1)
    ramp = np.linspace(0, 1, big)
    direction = rng.uniform(0, 2 * np.pi)
    grad = np.clip(np.cos(direction) * ramp[None, :] + np.sin(direction) * ramp[:, None], 0, 1)
    canvas = bg[None, None] * (1 - grad[..., None]) + bg2[None, None] * grad[..., None]

    scale = rng.uniform(0.22, 0.4) * big
    centre = rng.uniform(0.35, 0.65, 2) * big
    angle = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    pts = _polygon(kind, rng) @ rot.T * scale + centre
    mask_img = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(mask_img)
    draw.polygon([tuple(p) for p in pts], fill=255)
    if kind == "ring":
        inner = _polygon("circle", rng) * scale * 0.55 + centre
        draw.polygon([tuple(p) for p in inner], fill=0)
    mask = np.asarray(mask_img, dtype=np.float64)[..., None] / 255.0
    canvas = canvas * (1 - mask) + fg[None, None] * mask
    small = Image.fromarray(np.uint8(np.clip(canvas, 0, 1) * 255)).resize((size, size), Image.BOX)
    img = np.asarray(small, dtype=np.float64) / 255.0
    img = img + rng.normal(0, 0.03, img.shape)  # mild texture noise
    return np.clip(img, 0, 1)


def shapes10(n: int, seed: int, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """n Shapes-10 images (N, 3, size, size) in [0, 1] (8-bit values) and balanced labels."""
    rng = np.random.default_rng([seed, 10])
    labels = rng.permutation(np.arange(n) % len(SHAPE_CLASSES))
    images = np.stack([_draw_shape(int(y), rng, size) for y in labels])
    x = torch.from_numpy(np.uint8(images * 255 + 1e-6)).permute(0, 3, 1, 2).float() / 255.0
    return x.contiguous(), torch.from_numpy(labels).long()


@dataclass
class SourceData:
    """Clean splits: source training, held-out source (threshold p_th) and target test."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    holdout_x: torch.Tensor
    holdout_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


def load_source(name: str, *, n_train: int, n_test: int, seed: int = 0) -> SourceData:
    """The embedded source/target split of `digits` or `shapes`.

    digits: stratified 1,000 / 100 / 697 images (n_train and n_test cap the train and test
    parts); shapes: n_train / 1,000 / n_test freshly drawn images.
    """
    if name == "digits":
        x, y = load_digits_images(size=32, channels=3, colorize=True, seed=seed)
        train, hold, test = stratified_split(
            y.numpy(), (1000 / 1797, 100 / 1797, 697 / 1797), seed=seed
        )
        train, test = train[:n_train], test[:n_test]
        x = (x * 255 + 1e-6).floor() / 255  # 8-bit values, like stored CIFAR images
        return SourceData(name, x[train], y[train], x[hold], y[hold], x[test], y[test])
    if name == "shapes":
        tx, ty = shapes10(n_train, seed=seed)
        hx, hy = shapes10(1000, seed=seed + 1)
        sx, sy = shapes10(n_test, seed=seed + 2)
        return SourceData(name, tx, ty, hx, hy, sx, sy)
    raise ValueError(f"unknown embedded dataset {name!r}; choose 'digits' or 'shapes'")


@dataclass
class Domain:
    name: str
    severity: int
    x: torch.Tensor
    y: torch.Tensor


def build_stream(
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    order: tuple[str, ...],
    severity: int = 5,
    seed: int = 0,
) -> list[Domain]:
    """One corrupted copy of the test set per domain, in the given order (no shuffling)."""
    images = np.uint8(test_x.permute(0, 2, 3, 1).numpy() * 255 + 1e-6)
    domains = []
    for name in order:
        corrupted = corrupt(images, name, severity, seed=seed)
        x = torch.from_numpy(corrupted).permute(0, 3, 1, 2).float().div(255.0).contiguous()
        domains.append(Domain(name, severity, x, test_y))
    return domains


def random_orders(n: int, names: tuple[str, ...], seed: int = 0) -> list[tuple[str, ...]]:
    """n random permutations of the corruption list (the '10 random orders' experiment)."""
    rng = np.random.default_rng([seed, 77])
    return [tuple(names[i] for i in rng.permutation(len(names))) for _ in range(n)]
