"""UNPG invariants (spec 7.1 items 1-5, 8): pair extraction, the filter, the loss."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from unpg.heads import ArcFace, CosFace, MagFace
from unpg.method import (
    UNPGLoss,
    negative_pair_similarities,
    unpg_cross_entropy,
    unpg_logits,
    whisker_fences,
    whisker_filter,
)


@pytest.fixture(autouse=True)
def _float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def _batch(seed=0, b=16, d=8, c=10, classes=5):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, d, generator=g)
    y = torch.randint(0, classes, (b,), generator=g)
    head = ArcFace(d, c, s=64, m=0.5)
    return x, y, head


HAND = torch.tensor([i / 100 for i in range(20)] + [0.90])


def test_filter_hand_made_list():
    lower, upper = whisker_fences(HAND, 1.5)
    assert lower == pytest.approx(-0.10) and upper == pytest.approx(0.30)
    assert len(whisker_filter(HAND, 1.5)) == 20 and 0.90 not in whisker_filter(HAND, 1.5)
    kept0 = whisker_filter(HAND, 0.0)
    assert len(kept0) == 11
    assert kept0.min().item() == pytest.approx(0.05) and kept0.max().item() == pytest.approx(0.15)
    assert len(whisker_filter(HAND, math.inf)) == 21


def test_filter_edge_cases_and_order():
    assert len(whisker_filter(torch.full((7,), 0.3), 0.0)) == 7
    assert whisker_filter(torch.tensor([0.4]), 1.5).tolist() == [0.4]
    assert whisker_filter(torch.tensor([]), 1.5).numel() == 0
    perm = HAND[torch.randperm(len(HAND))]
    assert torch.equal(whisker_filter(perm, 1.5), whisker_filter(HAND, 1.5))


@pytest.mark.parametrize("r,dropped", [(1.5, 0.0070), (1.0, 0.0430)])
def test_filter_gaussian_tail_fraction(r, dropped):
    values = torch.randn(400_000, generator=torch.Generator().manual_seed(1))
    frac = 1 - len(whisker_filter(values, r)) / len(values)
    assert frac == pytest.approx(dropped, abs=0.0015)


def test_pair_extraction_counts_and_permutation():
    x, y, head = _batch()
    f = F.normalize(x, dim=1)
    neg = negative_pair_similarities(f, y)
    same = sum(int(y[a] == y[b]) for a in range(16) for b in range(a + 1, 16))
    assert len(neg) == 16 * 15 // 2 - same
    brute = sorted(
        (f[a] @ f[b]).item() for a in range(16) for b in range(a + 1, 16) if y[a] != y[b]
    )
    np.testing.assert_allclose(sorted(neg.tolist()), brute)
    perm = torch.randperm(16)
    np.testing.assert_allclose(sorted(negative_pair_similarities(f[perm], y[perm]).tolist()), brute)
    loss = UNPGLoss(head)
    torch.testing.assert_close(loss(x[perm], y[perm]), loss(x, y))


@pytest.mark.parametrize("head_cls", [ArcFace, CosFace, MagFace])
def test_single_label_batch_equals_base_loss_exactly(head_cls):
    x = torch.randn(8, 6, requires_grad=True)
    y = torch.full((8,), 2)
    head = head_cls(6, 5)
    base = UNPGLoss(head, unpg=False)(x, y)
    (g_base,) = torch.autograd.grad(base, x)
    ours = UNPGLoss(head, unpg=True)(x, y)
    (g_ours,) = torch.autograd.grad(ours, x)
    assert ours.item() == base.item()
    assert torch.equal(g_ours, g_base)


def test_minus_inf_columns_equal_base_and_monotonicity():
    x, y, head = _batch(1)
    out = head(x, y)
    base = F.cross_entropy(64 * out.logits, y)
    minus_inf = unpg_cross_entropy(out.logits, torch.full((5,), -math.inf), y, 64)
    torch.testing.assert_close(minus_inf, base)
    t = torch.tensor([0.1, -0.2, 0.3], requires_grad=True)
    loss = unpg_cross_entropy(out.logits.detach(), t, y, 64)
    assert loss > base
    (grad,) = torch.autograd.grad(loss, t)
    full = torch.cat([64 * out.logits.detach(), 64 * t.detach()[None].expand(16, -1)], 1)
    expected = 64 / 16 * torch.softmax(full, 1)[:, -3:].sum(0)
    torch.testing.assert_close(grad, expected)
    assert (grad > 0).all()
    bumped = unpg_cross_entropy(out.logits.detach(), t.detach() + torch.tensor([0, 0, 1e-3]), y, 64)
    assert bumped > loss


def test_gradient_reaches_both_members_of_the_only_pair():
    d = 4
    head = CosFace(d, 3, s=8.0)
    x = torch.randn(5, d, requires_grad=True)
    y = torch.tensor([0, 0, 0, 1, 0])  # every negative pair contains sample 3
    # The extra term alone (UNPG minus base) moves both ends of each pair.
    diff = UNPGLoss(head, whisker=math.inf)(x, y) - UNPGLoss(head, unpg=False)(x, y)
    (g,) = torch.autograd.grad(diff, x)
    assert all(g[i].norm() > 0 for i in range(5))


def test_shared_form_pairs_receive_gradient_from_other_rows():
    head = CosFace(4, 3, s=8.0)
    x = torch.randn(4, 4, requires_grad=True)
    y = torch.tensor([0, 1, 1, 1])
    f = F.normalize(x, dim=1)
    extra = negative_pair_similarities(f, y)  # only pairs containing sample 0
    out = head(x, y)
    full = torch.cat([8 * out.logits, 8 * extra[None].expand(4, -1)], 1)
    # Row 1's loss alone still depends on pair (0, 2) through the shared extra columns.
    row1 = -torch.log_softmax(full, 1)[1, y[1]]
    (g,) = torch.autograd.grad(row1, x)
    assert g[2].norm() > 0 and full.shape[1] == 3 + 3


def test_chunked_loss_equals_full_batch():
    x, y, head = _batch(3, b=24)
    f = F.normalize(x, dim=1)
    extra = whisker_filter(negative_pair_similarities(f, y), 1.5)
    out = head(x, y)
    full = unpg_cross_entropy(out.logits, extra, y, 64)
    chunks = [
        unpg_cross_entropy(out.logits[i : i + 8], extra, y[i : i + 8], 64) for i in (0, 8, 16)
    ]
    torch.testing.assert_close(torch.stack(chunks).mean(), full)
    torch.testing.assert_close(UNPGLoss(head)(x, y), full)


def test_anchor_scope_uses_only_own_pairs():
    x, y, head = _batch(4)
    loss = UNPGLoss(head, scope="anchor", whisker=math.inf)
    extra = loss.extra_negatives(x, y)
    f = F.normalize(x, dim=1)
    for i in range(16):
        finite = torch.isfinite(extra[i])
        assert finite.sum() == (y != y[i]).sum()
        torch.testing.assert_close(extra[i][finite], (f @ f[i])[y != y[i]])
    assert loss(x, y) > UNPGLoss(head, unpg=False)(x, y)


def test_bad_options_rejected():
    head = CosFace(4, 3)
    with pytest.raises(ValueError, match="whisker"):
        UNPGLoss(head, whisker=-1)
    with pytest.raises(ValueError, match="scope"):
        UNPGLoss(head, scope="row")


def test_shared_shortcut_equals_explicit_concatenation():
    x, y, head = _batch(5, b=20)
    x.requires_grad_(True)
    f = F.normalize(x, dim=1)
    extra = whisker_filter(negative_pair_similarities(f, y), 1.5)
    out = head(x, y)
    fast = unpg_cross_entropy(out.logits, extra, y, 64)
    explicit = F.cross_entropy(unpg_logits(out.logits, extra, 64), y)
    torch.testing.assert_close(fast, explicit)
    (g_fast,) = torch.autograd.grad(fast, x, retain_graph=True)
    (g_explicit,) = torch.autograd.grad(explicit, x)
    torch.testing.assert_close(g_fast, g_explicit)
