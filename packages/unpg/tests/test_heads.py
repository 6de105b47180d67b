"""Margin heads against their closed forms (spec 7.1 item 6) and scale invariance (item 7)."""

import math

import pytest
import torch

from unpg.heads import (
    HEADS,
    AdaFace,
    ArcFace,
    CosFace,
    CurricularFace,
    MagFace,
    SphereFace,
    build_head,
)
from unpg.method import UNPGLoss


@pytest.fixture(autouse=True)
def _float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def _aligned(theta: torch.Tensor, norms: torch.Tensor | None = None):
    """A 2-D head whose proxy 0 is e_1, and samples at angle θ to it (labels all 0)."""
    x = torch.stack([torch.cos(theta), torch.sin(theta)], dim=1)
    if norms is not None:
        x = x * norms[:, None]
    return x, torch.zeros(len(theta), dtype=torch.long)


def _fix_proxies(head):
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]))
    return head


THETA = torch.linspace(0.01, math.pi - 0.01, 181, dtype=torch.float64)


@pytest.mark.parametrize("mode", ["official", "insightface"])
def test_arcface_target_closed_form(mode):
    m = 0.5
    head = _fix_proxies(ArcFace(2, 3, s=64, m=m, mode=mode))
    x, y = _aligned(THETA)
    out = head(x, y).logits
    expected = torch.cos(THETA + m)
    if mode == "insightface":
        beyond = THETA + m >= math.pi
        expected = torch.where(beyond, torch.cos(THETA) - m * math.sin(m), expected)
        assert beyond.any()
    torch.testing.assert_close(out[:, 0], expected)
    torch.testing.assert_close(out[:, 1], torch.sin(THETA))  # non-targets untouched
    inside = math.pi - m > THETA
    prod = torch.cos(THETA) * math.cos(m) - torch.sin(THETA) * math.sin(m)
    torch.testing.assert_close(out[inside, 0], prod[inside])


def test_arcface_finite_gradient_at_extreme_angles():
    head = _fix_proxies(ArcFace(2, 3))
    x, y = _aligned(torch.tensor([0.0, math.pi]))
    x.requires_grad_(True)
    UNPGLoss(head, unpg=False)(x, y).backward()
    assert torch.isfinite(x.grad).all()


def test_cosface_and_sphereface_closed_forms():
    x, y = _aligned(THETA)
    cos = _fix_proxies(CosFace(2, 3, m=0.35))(x, y).logits[:, 0]
    torch.testing.assert_close(cos, torch.cos(THETA) - 0.35)
    sph = _fix_proxies(SphereFace(2, 3, m=4))(x, y).logits[:, 0]
    k = torch.floor(4 * THETA / math.pi)
    torch.testing.assert_close(sph, (-1.0) ** k * torch.cos(4 * THETA) - 2 * k)
    assert (sph.diff() < 0).all()  # monotone extension


def test_magface_margin_easy_margin_and_regulariser():
    head = _fix_proxies(MagFace(2, 3))
    a = torch.tensor([10.0, 60.0, 110.0])
    torch.testing.assert_close(head.margin(a), torch.tensor([0.45, 0.625, 0.8]))
    norms = torch.linspace(5.0, 130.0, len(THETA))
    x, y = _aligned(THETA, norms)
    out = head(x, y)
    a = norms.clamp(10, 110)
    m = 0.45 + (0.8 - 0.45) / 100 * (a - 10)
    expected = torch.where(torch.cos(THETA) > 0, torch.cos(THETA + m), torch.cos(THETA))
    torch.testing.assert_close(out.logits[:, 0], expected)
    torch.testing.assert_close(out.regularizer, 35 * (a / 110**2 + 1 / a).mean())


def test_adaface_closed_form_given_buffers():
    head = _fix_proxies(AdaFace(2, 3, m=0.4, h=0.333, t_alpha=0.01)).eval()
    head.batch_mean.fill_(30.0)
    head.batch_std.fill_(8.0)
    norms = torch.linspace(1.0, 80.0, len(THETA))
    x, y = _aligned(THETA, norms)
    out = head(x, y).logits[:, 0]
    ms = ((norms - 30.0) / (8.0 + 1e-3) * 0.333).clamp(-1, 1)
    theta = (THETA - 0.4 * ms).clamp(1e-7, math.pi - 1e-7)
    torch.testing.assert_close(out, torch.cos(theta) - (0.4 + 0.4 * ms))
    head.train()
    head(x, y)
    torch.testing.assert_close(head.batch_mean, 0.01 * norms.mean() + 0.99 * torch.tensor(30.0))


def test_curricularface_reweights_hard_negatives():
    head = _fix_proxies(CurricularFace(2, 3, m=0.5)).train()
    x, y = _aligned(torch.tensor([1.2, 0.2]))
    out = head(x, y).logits
    t = 0.01 * torch.cos(torch.tensor([1.2, 0.2])).mean()
    psi = torch.cos(torch.tensor([1.2, 0.2]) + 0.5)
    sin1 = math.sin(1.2)  # cos to proxy 1 for sample 0: hard, since sin(1.2) > cos(1.7)
    torch.testing.assert_close(out[0, 1], torch.tensor(sin1 * (t.item() + sin1)))
    torch.testing.assert_close(out[1, 1], torch.tensor(math.sin(0.2)))  # easy: untouched
    torch.testing.assert_close(out[:, 0], psi)


@pytest.mark.parametrize("name", HEADS)
@pytest.mark.parametrize("unpg", [False, True])
def test_scale_invariance(name, unpg):
    torch.manual_seed(0)
    head = build_head(name, 8, 6).eval()
    loss = UNPGLoss(head, unpg=unpg)
    x, y = torch.randn(12, 8) * 15, torch.randint(0, 6, (12,))
    a, b = loss(x, y), loss(3.0 * x, y)
    if head.norm_aware:
        assert not torch.isclose(a, b)
    else:
        torch.testing.assert_close(a, b)


def test_build_head_rejects_bad_values():
    with pytest.raises(ValueError, match="unknown head"):
        build_head("nope", 4, 3)
    with pytest.raises(ValueError, match="margin"):
        ArcFace(4, 3, m=2.0)
    with pytest.raises(ValueError, match="scale"):
        CosFace(4, 3, s=0)
