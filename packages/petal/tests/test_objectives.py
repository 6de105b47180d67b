"""Closed-form checks of the PETAL equations (spec 9.1)."""

import math

import numpy as np
import pytest
import torch

from petal.objectives import (
    PRIOR_DAMPING,
    ema_update_,
    entropy,
    fim_restore_masks,
    gaussian_prior_penalty,
    linear_quantile,
    restore_,
    soft_cross_entropy,
    symmetric_cross_entropy,
)


def test_prior_value_gradient_and_zero():
    theta = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    mu = torch.zeros(2, dtype=torch.float64)
    var = torch.tensor([1.0, 4.0], dtype=torch.float64)
    value = gaussian_prior_penalty([theta], [mu], [var])
    expected = 0.5 * (1 / (1 + PRIOR_DAMPING) + 4 / (4 + PRIOR_DAMPING))
    assert value.item() == pytest.approx(expected, rel=1e-12)
    assert value.item() == pytest.approx(0.9999993, abs=1e-7)
    lam = 1e-3
    (lam * value).backward()
    assert torch.allclose(theta.grad, lam * (theta.detach() - mu) / (var + PRIOR_DAMPING))
    assert gaussian_prior_penalty([mu], [mu], [var]).item() == 0.0


def test_prior_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="shapes differ"):
        gaussian_prior_penalty([torch.zeros(2)], [torch.zeros(3)], [torch.ones(2)])


def test_soft_ce_closed_forms():
    gen = torch.Generator().manual_seed(0)
    k = 7
    teacher = torch.randn(5, k, generator=gen)
    flat = torch.zeros(5, k)
    assert torch.allclose(soft_cross_entropy(flat, teacher), torch.full((5,), math.log(k)))
    z = torch.randn(5, k, generator=gen)
    onehot = torch.full((5, k), -1e4)
    onehot[:, 2] = 1e4
    assert torch.allclose(soft_cross_entropy(z, onehot), -z.log_softmax(1)[:, 2], atol=1e-5)
    # Gibbs: CE(p, z) >= H(p), with equality iff softmax(z) = p
    assert (soft_cross_entropy(z, teacher) >= entropy(teacher) - 1e-6).all()
    assert torch.allclose(soft_cross_entropy(teacher, teacher), entropy(teacher), atol=1e-6)


def test_symmetric_ce_is_half_sum_and_symmetric():
    gen = torch.Generator().manual_seed(1)
    z, t = torch.randn(4, 5, generator=gen), torch.randn(4, 5, generator=gen)
    half = 0.5 * (soft_cross_entropy(z, t) + soft_cross_entropy(t, z))
    assert torch.allclose(symmetric_cross_entropy(z, t), half)
    assert torch.allclose(symmetric_cross_entropy(z, t), symmetric_cross_entropy(t, z))


@pytest.mark.parametrize("delta", [0.0, 0.03, 0.25, 0.5, 0.999, 1.0])
def test_quantile_matches_numpy_and_torch(delta):
    n = 101
    ramp = torch.arange(n, dtype=torch.float32)
    assert linear_quantile(ramp, delta).item() == pytest.approx(delta * (n - 1), rel=1e-6)
    gen = torch.Generator().manual_seed(2)
    values = torch.randn(5000, generator=gen).round(decimals=1)  # many ties
    ours = linear_quantile(values, delta)
    assert ours.dtype == values.dtype and ours.dim() == 0
    assert ours.item() == pytest.approx(float(np.quantile(values.numpy(), delta)), abs=1e-6)
    # torch.quantile interpolates in float32 with a different rounding order
    assert ours.item() == pytest.approx(torch.quantile(values, delta).item(), abs=1e-4)


def test_quantile_rejects_bad_level():
    with pytest.raises(ValueError):
        linear_quantile(torch.ones(3), 1.5)


@pytest.mark.parametrize("delta", [0.03, 0.1, 0.5])
def test_fim_mask_count(delta):
    n = 1000
    gen = torch.Generator().manual_seed(3)
    grads = torch.randperm(n, generator=gen).float().sqrt()  # F = grad² takes values 0..n-1
    r = delta * (n - 1)
    expected = math.floor(r) + 1 if r != int(r) else int(r)
    masks = fim_restore_masks([grads[:400], grads[400:]], delta)
    assert sum(int(m.sum()) for m in masks) == expected


def test_fim_mask_edge_cases():
    assert not fim_restore_masks([torch.ones(50)], 0.3)[0].any()  # all equal
    g = torch.cat([torch.zeros(10), torch.arange(1, 91).float()])  # 10% exact zeros
    assert not fim_restore_masks([g], 0.05)[0].any()


def test_ema_closed_form_and_restore():
    teacher = [torch.tensor([4.0, -2.0], dtype=torch.float64)]
    student = [torch.tensor([1.0, 1.0], dtype=torch.float64)]
    alpha, k = 0.9, 7
    for _ in range(k):
        ema_update_(teacher, student, alpha)
    expected = student[0] + alpha**k * (torch.tensor([4.0, -2.0], dtype=torch.float64) - 1.0)
    assert torch.allclose(teacher[0], expected)
    params = [torch.arange(6.0)]
    count = restore_(params, [torch.zeros(6)], [torch.tensor([1, 0, 1, 0, 0, 0]).bool()])
    assert count == 2 and params[0].tolist() == [0, 1, 0, 3, 4, 5]
