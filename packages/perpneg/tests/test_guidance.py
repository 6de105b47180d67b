"""Invariants of the guidance rules (spec §7, items 1-13)."""

import pytest
import torch

from perpneg.guidance import (
    cfg,
    combine,
    composable,
    composable_not,
    inner,
    perp_component,
    perpneg,
    sd_negative,
)

SHAPES = [(3, 4, 8, 8), (2, 5), (4, 2, 3)]


def rand(shape, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=dtype)


def rel(a, b):
    return float((a - b).abs().max() / (b.abs().max() + 1e-30))


@pytest.mark.parametrize("shape", SHAPES)
def test_orthogonal_idempotent_decomposition(shape):
    a, b = rand(shape, 0), rand(shape, 1)
    p = perp_component(a, b)
    dots = inner(p, b).flatten()
    scale = (inner(a, a) * inner(b, b)).sqrt().flatten()
    assert (dots.abs() / scale).max() < 1e-10
    assert rel(perp_component(p, b), p) < 1e-10
    proj = inner(a, b) / inner(b, b) * b
    assert rel(p + proj, a) < 1e-12


def test_orthogonal_float32():
    a, b = rand((3, 4, 8, 8), 0, torch.float32), rand((3, 4, 8, 8), 1, torch.float32)
    p = perp_component(a, b)
    cos = inner(p, b).flatten() / (inner(p, p) * inner(b, b)).sqrt().flatten()
    assert cos.abs().max() < 1e-5


def test_fp16_projection_keeps_precision():
    a, b = rand((2, 4, 16, 16), 0), rand((2, 4, 16, 16), 1)
    exact = perp_component(a, b)
    half = perp_component(a.half(), b.half()).double()
    assert rel(half, exact) < 5e-3


@pytest.mark.parametrize("lam", [2.5, -0.3])
def test_scale_invariance_and_linearity(lam):
    a, a2, b = rand((3, 6), 0), rand((3, 6), 2), rand((3, 6), 1)
    assert rel(perp_component(a, lam * b), perp_component(a, b)) < 1e-12
    assert rel(perp_component(lam * a, b), lam * perp_component(a, b)) < 1e-12
    assert rel(perp_component(a + a2, b), perp_component(a, b) + perp_component(a2, b)) < 1e-12


def _branches(shape=(3, 4, 8, 8), k=2, seed=0):
    eps_u, eps_pos = rand(shape, seed), rand(shape, seed + 1)
    negs = [rand(shape, seed + 10 + i) for i in range(k)]
    return eps_u, eps_pos, negs


def test_main_direction_preserved():
    eps_u, eps_pos, negs = _branches()
    s = 7.5
    out = perpneg(
        eps_u,
        eps_pos,
        negs,
        [1.5, 0.7],
        s,
        extra_pos=[rand(eps_u.shape, 5)],
        extra_pos_weights=[0.4],
    )
    d = eps_pos - eps_u
    assert rel(inner(out - eps_u, d), s * inner(d, d)) < 1e-10


def test_reduces_to_cfg():
    eps_u, eps_pos, negs = _branches()
    s = 7.5
    ref = cfg(eps_u, eps_pos, s)
    assert torch.equal(perpneg(eps_u, eps_pos, [], [], s), ref)
    assert rel(perpneg(eps_u, eps_pos, negs, [0.0, 0.0], s), ref) < 1e-14
    # An empty negative (ε_neg = ε_u) and a negative equal or parallel to the positive.
    assert rel(perpneg(eps_u, eps_pos, [eps_u.clone()], [2.0], s), ref) < 1e-14
    assert rel(perpneg(eps_u, eps_pos, [eps_pos.clone()], [2.0], s), ref) < 1e-12
    parallel = eps_u - 0.4 * (eps_pos - eps_u)
    assert rel(perpneg(eps_u, eps_pos, [parallel], [2.0], s), ref) < 1e-12


def test_orthogonal_negative_equals_composable_not():
    eps_u, eps_pos, negs = _branches(k=2)
    d = eps_pos - eps_u
    orth = [eps_u + perp_component(n - eps_u, d) for n in negs]
    w = [1.5, 0.5]
    assert (
        rel(perpneg(eps_u, eps_pos, orth, w, 7.5), composable_not(eps_u, eps_pos, orth, w, 7.5))
        < 1e-12
    )


def test_replace_uncond_identity():
    eps_u, eps_pos, (eps_neg,) = _branches(k=1)
    s = 7.5
    lhs = sd_negative(eps_pos, eps_neg, s)
    rhs = eps_u + s * (eps_pos - eps_u) - (s - 1) * (eps_neg - eps_u)
    assert rel(lhs, rhs) < 1e-12
    assert rel(composable(eps_u, [eps_pos, eps_neg], [s, -(s - 1)]), rhs) < 1e-12


def test_per_sample_vs_global():
    eps_u, eps_pos, negs = _branches(shape=(1, 4, 8, 8))
    a = perpneg(eps_u, eps_pos, negs, [1.0, 2.0], 7.5)
    b = perpneg(eps_u, eps_pos, negs, [1.0, 2.0], 7.5, per_sample=False)
    assert rel(a, b) < 1e-12
    eps_u, eps_pos, negs = _branches(shape=(3, 4, 8, 8))
    a = perpneg(eps_u, eps_pos, negs, [1.0, 2.0], 7.5)
    b = perpneg(eps_u, eps_pos, negs, [1.0, 2.0], 7.5, legacy="official_2d")
    assert rel(a, b) > 1e-3
    # per-sample: each sample's result only depends on that sample
    c = perpneg(eps_u[:1], eps_pos[:1], [n[:1] for n in negs], [1.0, 2.0], 7.5)
    assert rel(a[:1], c) < 1e-12


def test_linear_and_permutation_invariant_in_negatives():
    eps_u, eps_pos, negs = _branches(k=3)
    w = [1.5, 0.5, 2.0]
    full = perpneg(eps_u, eps_pos, negs, w, 7.5)
    perm = perpneg(eps_u, eps_pos, negs[::-1], w[::-1], 7.5)
    assert rel(full, perm) < 1e-12
    cfg_out = cfg(eps_u, eps_pos, 7.5)
    parts = sum(
        perpneg(eps_u, eps_pos, [n], [wi], 7.5) - cfg_out for n, wi in zip(negs, w, strict=True)
    )
    assert rel(full - cfg_out, parts) < 1e-12


def test_parameterisation_invariance():
    x_t = rand((2, 4, 8, 8), 42)
    alpha, sigma = 0.6, 0.8
    eps_u, eps_pos, negs = _branches(shape=(2, 4, 8, 8))
    w, s = [1.5, 0.5], 7.5
    out_eps = perpneg(eps_u, eps_pos, negs, w, s)

    def x0(e):
        return (x_t - sigma * e) / alpha

    def v(e):
        return alpha * e - sigma * x0(e)

    out_x0 = perpneg(x0(eps_u), x0(eps_pos), [x0(n) for n in negs], w, s)
    out_v = perpneg(v(eps_u), v(eps_pos), [v(n) for n in negs], w, s)
    assert rel((x_t - alpha * out_x0) / sigma, out_eps) < 1e-10
    # v = αε − σx0 with x0 = (x_t − σε)/α  ⇒  ε = (v + σ x_t / α) α / (α² + σ²)
    assert rel((out_v + sigma * x_t / alpha) * alpha / (alpha**2 + sigma**2), out_eps) < 1e-10


def test_degenerate_main_direction_uses_floor():
    eps_u, _, negs = _branches()
    out = perpneg(eps_u, eps_u.clone(), negs, [1.5, 0.5], 7.5)
    ref = eps_u + 7.5 * (-(1.5 * (negs[0] - eps_u) + 0.5 * (negs[1] - eps_u)))
    assert torch.isfinite(out).all() and rel(out, ref) < 1e-12


def test_hand_computed_fixture():
    eps_u = torch.zeros(1, 3, dtype=torch.float64)
    pos = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    neg = torch.tensor([[1.0, 1.0, 0.0]], dtype=torch.float64)
    out = perpneg(eps_u, pos, [neg], [1.5], 7.5)
    assert torch.allclose(out, torch.tensor([[7.5, -11.25, 0.0]], dtype=torch.float64))
    # Composable NOT on the same overlap reverses the main direction (1 − wρ = −0.5).
    out_c = composable_not(eps_u, pos, [neg], [1.5], 7.5)
    assert torch.allclose(out_c, torch.tensor([[-3.75, -11.25, 0.0]], dtype=torch.float64))


def test_legacy_official_extra_positive_shift():
    eps_u, eps_pos, _ = _branches()
    extras = [rand(eps_u.shape, 20), rand(eps_u.shape, 21)]
    d = eps_pos - eps_u
    out = perpneg(
        eps_u, eps_pos, [], [], 2.0, extras, [0.3, 0.9], legacy="official_2d", main_weight=1.0
    )
    p0 = perp_component(extras[0] - eps_u, d, per_sample=False, eps=None)
    p1 = perp_component(extras[1] - eps_u, d, per_sample=False, eps=None)
    assert rel(out, eps_u + 2.0 * (d + 1.0 * p0 + 0.3 * p1)) < 1e-12


def test_per_sample_weights_and_errors():
    eps_u, eps_pos, negs = _branches(k=1)
    w = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
    out = perpneg(eps_u, eps_pos, negs, [w], 7.5)
    for i in range(3):
        one = perpneg(
            eps_u[i : i + 1], eps_pos[i : i + 1], [negs[0][i : i + 1]], [float(w[i])], 7.5
        )
        assert rel(out[i : i + 1], one) < 1e-12
    with pytest.raises(ValueError, match="one weight per"):
        perpneg(eps_u, eps_pos, negs, [1.0, 2.0], 7.5)
    with pytest.raises(ValueError, match="per-sample weight"):
        perpneg(eps_u, eps_pos, negs, [torch.ones(2)], 7.5)
    with pytest.raises(ValueError, match="unknown guidance"):
        combine("nope", eps_u, eps_pos, negs, [1.0], 7.5)


def test_combine_dispatch():
    eps_u, eps_pos, negs = _branches(k=2)
    w = [1.0, 3.0]
    mean_neg = 0.25 * negs[0] + 0.75 * negs[1]
    assert (
        rel(
            combine("sd_negative", eps_u, eps_pos, negs, w, 5.0),
            sd_negative(eps_pos, mean_neg, 5.0),
        )
        < 1e-12
    )
    assert rel(combine("cfg", eps_u, eps_pos, negs, w, 5.0), cfg(eps_u, eps_pos, 5.0)) < 1e-14
