"""Data sets as pixels in [0, 1]: the embedded 8×8 digits and the torchvision MNIST family.

The multiplicative model sees x_0 = pixel + offset (spec §1.1); that shift happens in the
training and sampling code, so the data here stay in [0, 1] for the classifier and metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from reprozoo.data import load_digits_images, require_layout, stratified_split

# torchvision class name and folder of each paper-scale data set, and where to get it.
TORCHVISION_SETS = {
    "mnist": ("MNIST", "https://yann.lecun.com/exdb/mnist/ (or torchvision MNIST download)"),
    "fashion_mnist": ("FashionMNIST", "https://github.com/zalandoresearch/fashion-mnist"),
    "kmnist": ("KMNIST", "https://github.com/rois-codh/kmnist (the MNIST-format files)"),
}
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@dataclass
class ImageData:
    """Train and test pixels in [0, 1], shape (n, 1, H, W), with int64 labels."""

    name: str
    train: torch.Tensor
    train_labels: torch.Tensor
    test: torch.Tensor
    test_labels: torch.Tensor


def load_digits(split_seed: int = 0) -> ImageData:
    """scikit-learn's 1 797 digits (v/16), stratified into 1 497 train / 300 test images."""
    images, labels = load_digits_images(size=8, channels=1)
    train_idx, test_idx = stratified_split(labels.numpy(), [1497 / 1797, 300 / 1797], split_seed)
    return ImageData(
        "digits",
        images[train_idx],
        labels[train_idx],
        images[test_idx],
        labels[test_idx],
    )


def load_torchvision(name: str, data_root: str | Path, download: bool = False) -> ImageData:
    """MNIST / Fashion-MNIST / KMNIST from `data_root/<Class>/raw/*-ubyte` through torchvision.

    Nothing is fetched unless `download=True`; a missing data set stops with the path looked at,
    the expected files and where to get them.
    """
    import torchvision

    if name not in TORCHVISION_SETS:
        raise ValueError(f"unknown data set {name!r}; choose one of {sorted(TORCHVISION_SETS)}")
    cls_name, source = TORCHVISION_SETS[name]
    root = Path(data_root)
    if not download:
        require_layout(
            root,
            cls_name,
            [f"{cls_name}/raw/{f}" for f in IDX_FILES],
            f"{source}; or rerun with --download to let torchvision fetch it into {root}",
        )
    cls = getattr(torchvision.datasets, cls_name)
    parts = []
    for train in (True, False):
        ds = cls(str(root), train=train, download=download)
        parts.append(ds.data.unsqueeze(1).float() / 255.0)
        parts.append(ds.targets.long())
    return ImageData(name, *parts)


def load_dataset(name: str, data_root: str | Path | None = None, download: bool = False):
    if name == "digits":
        return load_digits()
    from reprozoo.data import resolve_data_root

    return load_torchvision(name, resolve_data_root(data_root), download)


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write a uint8 array in the MNIST idx format (used by the tests to fabricate data sets)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(header + array.tobytes())
