"""The teacher augmentation and the SWAG-diagonal posterior."""

import copy

import pytest
import torch

from petal.augment import augment_batch
from petal.train import SourceConfig, fit_swag_diagonal


def test_augment_shape_range_and_seed():
    x = torch.rand(4, 3, 16, 16)
    a = augment_batch(x, 3, torch.Generator().manual_seed(0))
    b = augment_batch(x, 3, torch.Generator().manual_seed(0))
    assert a.shape == (12, 3, 16, 16) and torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 1
    assert not torch.allclose(a[:4], a[4:8])  # different draws differ
    c = augment_batch(x, 3, torch.Generator().manual_seed(1))
    assert not torch.equal(a, c)


def test_augment_is_close_to_identity_on_a_flat_image():
    x = torch.full((2, 3, 16, 16), 0.5)
    a = augment_batch(x, 4, torch.Generator().manual_seed(0))
    # colour jitter moves the level, geometry keeps a flat image flat (up to noise)
    per_image_std = a.view(8, -1).std(dim=1)
    assert (per_image_std < 0.03).all()


def test_swag_moments_closed_form(tiny_model):
    x = torch.rand(40, 3, 16, 16)
    y = torch.randint(0, 5, (40,))
    cfg = SourceConfig(swag_epochs=3, swag_collect_from=1, swag_batch_size=20, swa_lr=0.01)
    # Recompute the two snapshots by replaying the same training with the same seed.
    model = copy.deepcopy(tiny_model)
    mean_model, post, count = fit_swag_diagonal(model, x, y, cfg, seed=0)
    assert count == 2
    work = copy.deepcopy(tiny_model).eval()
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.SGD(work.parameters(), lr=cfg.swag_lr, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.swa_utils.SWALR(
        opt, swa_lr=cfg.swa_lr, anneal_epochs=3, anneal_strategy="linear"
    )
    snaps = []
    for epoch in range(3):
        perm = torch.randperm(40, generator=gen)
        for s in range(0, 40, 20):
            idx = perm[s : s + 20]
            loss = torch.nn.functional.cross_entropy(work(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if epoch >= 1:
            snaps.append([p.detach().double().clone() for p in work.parameters()])
            sched.step()
    for i, (m, v) in enumerate(zip(post.mean(), post.var(), strict=True)):
        a, b = snaps[0][i], snaps[1][i]
        assert torch.allclose(m.double(), (a + b) / 2, atol=1e-6)
        assert torch.allclose(v.double(), ((a - b) / 2) ** 2, atol=1e-9)
        assert (v >= 0).all()
    for p, m in zip(mean_model.parameters(), post.mean(), strict=True):
        assert torch.equal(p, m)


def test_swag_identical_snapshots_give_zero_variance(tiny_model):
    x = torch.rand(20, 3, 16, 16)
    y = torch.randint(0, 5, (20,))
    cfg = SourceConfig(swag_epochs=2, swag_collect_from=1, swag_lr=1e-12, swa_lr=1e-12)
    _, post, count = fit_swag_diagonal(tiny_model, x, y, cfg, seed=0)
    assert count == 1
    assert all(float(v.max()) == 0.0 for v in post.var())


def test_swag_divergence_is_reported(tiny_model):
    x = torch.rand(20, 3, 16, 16)
    y = torch.randint(0, 5, (20,))
    cfg = SourceConfig(swag_epochs=3, swag_lr=1e6, swa_lr=1e9)
    with pytest.raises(FloatingPointError, match="swa-lr"):
        fit_swag_diagonal(tiny_model, x, y, cfg, seed=0)
