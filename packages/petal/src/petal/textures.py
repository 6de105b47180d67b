"""Procedural textures for the fog and frost corruptions."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def plasma_fractal(size: int, decay: float, rng: np.random.Generator) -> np.ndarray:
    """Diamond-square fractal noise on a periodic size×size grid (size a power of 2), in [0, 1].

    The random perturbation starts at amplitude 100 and is divided by `decay` at every halving
    of the step, so a larger decay gives a smoother map (the fog's "wibble decay").
    """
    grid = np.zeros((size, size))
    step, amp = size, 100.0

    def noisy_mean(total: np.ndarray) -> np.ndarray:
        return total / 4 + amp * rng.uniform(-amp, amp, total.shape)

    while step >= 2:
        half = step // 2
        corners = grid[0:size:step, 0:size:step]
        # square step: centre of each square = mean of its 4 corners + noise
        square = corners + np.roll(corners, -1, axis=0)
        square = square + np.roll(square, -1, axis=1)
        grid[half:size:step, half:size:step] = noisy_mean(square)
        # diamond step: edge midpoints = mean of the 2 adjacent corners and 2 centres + noise
        centres = grid[half:size:step, half:size:step]
        grid[0:size:step, half:size:step] = noisy_mean(
            centres + np.roll(centres, 1, axis=0) + corners + np.roll(corners, -1, axis=1)
        )
        grid[half:size:step, 0:size:step] = noisy_mean(
            centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=0)
        )
        step, amp = half, amp / decay
    grid -= grid.min()
    return grid / grid.max()


@lru_cache(maxsize=8)
def frost_texture(index: int, size: int = 96) -> np.ndarray:
    """One of six deterministic ice textures (size, size, 3) in [0, 1].

    A stand-in for the six frost photographs of ImageNet-C/CIFAR-10-C (which cannot ship):
    a bright fractal haze with branching crystal streaks, slightly bluish.
    """
    if not 0 <= index < 6:
        raise ValueError(f"frost texture index must be 0..5, got {index}")
    rng = np.random.default_rng(1000 + index)
    haze = plasma_fractal(128, 2.0, rng)[:size, :size]
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    for _ in range(60):
        x, y = rng.uniform(0, size, 2)
        angle = rng.uniform(0, 2 * np.pi)
        for _ in range(int(rng.integers(3, 8))):
            length = rng.uniform(3, 12)
            nx, ny = x + length * np.cos(angle), y + length * np.sin(angle)
            draw.line([(x, y), (nx, ny)], fill=int(rng.integers(120, 256)), width=1)
            x, y = nx, ny
            angle += rng.normal(0, 0.6)
    streaks = np.asarray(canvas.filter(ImageFilter.GaussianBlur(0.6)), dtype=np.float64) / 255
    ice = np.clip(0.55 * haze + 0.8 * streaks, 0, 1)
    tint = np.array([0.85, 0.92, 1.0])
    return ice[..., None] * tint
