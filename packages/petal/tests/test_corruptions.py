"""CIFAR-10-C corruption properties (spec 9.1, last item)."""

import numpy as np
import pytest
import torch

from petal.corruptions import CORRUPTIONS, SEVERITY, corrupt
from petal.data import shapes10


@pytest.fixture(scope="module")
def images():
    x, _ = shapes10(24, seed=0)
    return np.uint8(x.permute(0, 2, 3, 1).numpy() * 255 + 1e-6)


def test_fifteen_corruptions_in_the_standard_order():
    assert len(CORRUPTIONS) == 15 and set(CORRUPTIONS) == set(SEVERITY)
    assert CORRUPTIONS[0] == "gaussian_noise" and CORRUPTIONS[-1] == "jpeg_compression"
    assert all(len(v) == 5 for v in SEVERITY.values())


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_shape_dtype_determinism_and_severity(name, images):
    out = [corrupt(images, name, s, seed=4) for s in (1, 3, 5)]
    assert all(o.shape == images.shape and o.dtype == np.uint8 for o in out)
    assert np.array_equal(out[2], corrupt(images, name, 5, seed=4))
    mse = [((o.astype(float) - images) ** 2).mean() for o in out]
    assert mse[2] > 0
    if name == "elastic_transform":
        # The CIFAR-10-C constants trade a shrinking affine jitter (2.6 px at severity 1, 1 px
        # at 5) against a growing elastic field, so pixel distance is not monotone here.
        return
    # severity 5 departs from the clean image at least as much as severity 1
    assert mse[0] <= mse[2] * 1.05, mse


def test_gaussian_noise_matches_its_sigma():
    grey = np.full((64, 32, 32, 3), 128, np.uint8)
    out = corrupt(grey, "gaussian_noise", 1, seed=0).astype(float) / 255
    assert out.std() == pytest.approx(SEVERITY["gaussian_noise"][0], rel=0.05)


def test_tensor_interface_and_errors(images):
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    y = corrupt(x, "contrast", 5, seed=0)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert y.std() < x.std()  # contrast 0.15 shrinks the spread
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(images, "rain", 1)
    with pytest.raises(ValueError, match="severity"):
        corrupt(images, "fog", 6)
