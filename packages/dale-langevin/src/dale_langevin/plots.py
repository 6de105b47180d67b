"""Image figures made from samples: grids and nearest-training-image panels."""

from __future__ import annotations

import os
from pathlib import Path

import torch


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def sample_grid(pixels: torch.Tensor, path: str | Path, title: str, rows: int = 8) -> Path:
    """An rows × rows grid of the first samples (grey scale, [0, 1])."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, rows, figsize=(rows * 0.6, rows * 0.6 + 0.4))
    for ax, img in zip(axes.flat, pixels[: rows * rows], strict=False):
        ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(title, fontsize=8)
    return _save(fig, Path(path))


def nearest_neighbour_panel(
    pixels: torch.Tensor, train: torch.Tensor, path: str | Path, title: str, n: int = 10
) -> Path:
    """Top row: samples; bottom row: the nearest training image of each (L2 in pixels)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dale_langevin.evaluate import nearest_distances

    samples = pixels[:n]
    dist, _, idx = nearest_distances(samples, train)
    fig, axes = plt.subplots(2, n, figsize=(n * 0.7, 1.8))
    for j in range(n):
        axes[0, j].imshow(samples[j, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        axes[1, j].imshow(train[idx[j], 0].numpy(), cmap="gray", vmin=0, vmax=1)
        axes[1, j].set_title(f"{float(dist[j]):.2f}", fontsize=6)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(title + " (top: samples, bottom: nearest training image, L2)", fontsize=7)
    return _save(fig, Path(path))
