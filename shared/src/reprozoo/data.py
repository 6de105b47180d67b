"""Data roots, layout checks and embedded datasets that need no download.

Paper-scale datasets live under a data root the user supplies. Before any model is built, a
package calls `require_layout` so that a missing dataset stops the run at once with the path
that was looked at, the files that were expected and where to get them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


class DataNotFoundError(FileNotFoundError):
    """A dataset is missing or laid out differently from what the package reads."""


def resolve_data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: `root` if given, else `$REPROZOO_DATA`, else a user cache folder."""
    if root is not None and str(root) != "":
        return Path(root).expanduser()
    env = os.environ.get("REPROZOO_DATA")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "reprozoo"


def require_layout(
    root: str | os.PathLike, dataset: str, expected: Sequence[str], source: str
) -> Path:
    """Check that every entry of `expected` (relative, globs allowed) exists under `root`."""
    root = Path(root)
    missing = [rel for rel in expected if not any(root.glob(rel))]
    if missing:
        layout = "\n".join(f"    {root / rel}" for rel in expected)
        absent = ", ".join(missing)
        raise DataNotFoundError(
            f"{dataset} not found under {root} (missing: {absent}).\n"
            f"  Expected layout:\n{layout}\n"
            f"  Where to get it: {source}\n"
            f"  Point the package at it with --data-root DIR or REPROZOO_DATA=DIR."
        )
    return root


def split_indices(n: int, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Split range(n) at random into consecutive parts of the given fractions."""
    _check_fractions(fractions)
    order = np.random.default_rng(seed).permutation(n)
    cuts = np.round(np.cumsum(fractions)[:-1] * n).astype(int)
    return [np.sort(part) for part in np.split(order, cuts)]


def stratified_split(labels, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Split indices so that every part holds each class in the given fractions."""
    _check_fractions(fractions)
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        cuts = np.round(np.cumsum(fractions)[:-1] * len(idx)).astype(int)
        for part, chunk in zip(parts, np.split(idx, cuts), strict=True):
            part.append(chunk)
    return [np.sort(np.concatenate(p)) for p in parts]


def _check_fractions(fractions: Sequence[float]) -> None:
    if not fractions or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"split fractions must be non-negative and sum to 1, got {fractions}")


def load_digits_images(
    size: int = 32, channels: int = 3, colorize: bool = False, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1,797 hand-written digits as images in [0, 1].

    Returns `(images, labels)`: float32 `(N, channels, size, size)` (bilinear resampling from
    8×8) and int64 labels. With `colorize=True` (needs `channels == 3`) each image gets a
    foreground and a background colour drawn from `seed`, the same on every call.
    """
    from sklearn.datasets import load_digits

    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if colorize and channels != 3:
        raise ValueError("colorize=True needs channels=3")
    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    if size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = x.clamp(0, 1)
    if channels == 3:
        x = x.repeat(1, 3, 1, 1)
    if colorize:
        gen = torch.Generator().manual_seed(seed)
        fg = torch.rand(len(x), 3, 1, 1, generator=gen)
        bg = torch.rand(len(x), 3, 1, 1, generator=gen)
        # Keep the digit visible: push the foreground away from the background.
        fg = torch.where((fg - bg).abs() < 0.35, (bg + 0.5) % 1.0, fg)
        x = bg + (fg - bg) * x
    return x.contiguous(), torch.tensor(bunch.target, dtype=torch.int64)


def pydoc_text() -> str:
    """CPython's `pydoc_data` topic texts joined in sorted key order (ships with Python)."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key] for key in sorted(topics))
