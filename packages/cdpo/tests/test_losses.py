"""Loss invariants of spec 7.1."""

import math

import pytest
import torch

from cdpo import losses as L

BETA = 0.1


def batch(B=3, J=7, seed=0, prompt=2):
    g = torch.Generator().manual_seed(seed)
    pi_w, ref_w, pi_l, ref_l = (torch.randn(B, J, generator=g) - 2 for _ in range(4))
    m_w = torch.zeros(B, J)
    m_l = torch.zeros(B, J)
    m_w[:, prompt : J - 1] = 1  # last position of chosen is padding
    m_l[:, prompt:] = 1
    return pi_w, ref_w, pi_l, ref_l, m_w, m_l


def with_grad(*xs):
    return [x.clone().requires_grad_(True) for x in xs]


def test_uniform_weights_equal_dpo_loss_and_gradients():
    pi_w, ref_w, pi_l, ref_l, m_w, m_l = batch()
    a_w, a_l = with_grad(pi_w, pi_l)
    b_w, b_l = with_grad(pi_w, pi_l)
    dpo = L.dpo_loss(a_w, ref_w, a_l, ref_l, m_w, m_l, BETA)
    ones = torch.ones_like(m_w)
    seq = L.cdpo_seq_loss(b_w, ref_w, b_l, ref_l, m_w, m_l, ones, ones, BETA)
    dpo.backward()
    seq.backward()
    assert torch.allclose(dpo, seq, atol=1e-6)
    assert torch.allclose(a_w.grad, b_w.grad, atol=1e-6)
    assert torch.allclose(a_l.grad, b_l.grad, atol=1e-6)


def test_code_form_equals_dpo_only_for_one_token_responses():
    pi_w, ref_w, pi_l, ref_l, _, _ = batch(J=1)
    m = torch.ones(3, 1)
    code = L.cdpo_code_loss(pi_w, ref_w, pi_l, ref_l, m, m, m, m, BETA)
    assert torch.allclose(code, L.dpo_loss(pi_w, ref_w, pi_l, ref_l, m, m, BETA), atol=1e-6)
    pi_w, ref_w, pi_l, ref_l, m_w, m_l = batch()
    ones = torch.ones_like(m_w)
    code = L.cdpo_code_loss(pi_w, ref_w, pi_l, ref_l, m_w, m_l, ones, ones, BETA)
    assert abs(code.item() - L.dpo_loss(pi_w, ref_w, pi_l, ref_l, m_w, m_l, BETA).item()) > 1e-3


def test_code_form_prompt_and_pad_positions_are_log2_without_gradient():
    pi_w, ref_w, pi_l, ref_l, m_w, m_l = batch()
    a_w, a_l = with_grad(pi_w, pi_l)
    ones = torch.ones_like(m_w)
    L.cdpo_code_loss(a_w, ref_w, a_l, ref_l, m_w, m_l, ones, ones, BETA).backward()
    off = (m_w == 0) & (m_l == 0)
    assert off.any()
    assert torch.all(a_w.grad[m_w == 0] == 0) and torch.all(a_l.grad[m_l == 0] == 0)
    # The loss is the mean of per-position terms; masked positions are exactly log 2 each.
    zero = torch.zeros_like(m_w)
    only_pad = L.cdpo_code_loss(pi_w, ref_w, pi_l, ref_l, zero, zero, ones, ones, BETA)
    assert math.isclose(only_pad.item(), math.log(2), rel_tol=1e-6)


def test_zero_rejected_weights_cut_the_rejected_gradient():
    pi_w, ref_w, pi_l, ref_l, m_w, m_l = batch()
    a_w, a_l = with_grad(pi_w, pi_l)
    loss = L.cdpo_seq_loss(
        a_w, ref_w, a_l, ref_l, m_w, m_l, torch.ones_like(m_w), torch.zeros_like(m_l), BETA
    )
    loss.backward()
    assert torch.all(a_l.grad == 0)
    delta_w = ((pi_w - ref_w) * m_w).sum(-1)
    expected = -torch.nn.functional.logsigmoid(BETA * delta_w).mean()
    assert torch.allclose(loss, expected, atol=1e-6)


@pytest.mark.parametrize("t_star", [2, 4])
def test_one_hot_rejected_weight_gradient_is_beta_sigma_w(t_star):
    pi_w, ref_w, pi_l, ref_l, m_w, m_l = batch(B=1)
    w_l = torch.zeros_like(m_l)
    w_l[0, t_star] = 0.7
    a_l = pi_l.clone().requires_grad_(True)
    ones = torch.ones_like(m_w)
    L.cdpo_seq_loss(pi_w, ref_w, a_l, ref_l, m_w, m_l, ones, w_l, BETA).backward()
    margin = ((pi_w - ref_w) * m_w).sum() - 0.7 * (pi_l - ref_l)[0, t_star]
    expected = BETA * torch.sigmoid(-BETA * margin) * 0.7
    grad = a_l.grad[0]
    assert torch.allclose(grad[t_star], expected, atol=1e-6)
    assert torch.all(grad[torch.arange(grad.numel()) != t_star] == 0)
    # Same value by finite differences on the log-ratio Δ^l_{t*}.
    eps = 1e-3

    def f(x):
        p = pi_l.clone().double()
        p[0, t_star] += x
        return L.cdpo_seq_loss(
            pi_w.double(), ref_w.double(), p, ref_l.double(), m_w, m_l, ones, w_l.double(), BETA
        ).item()

    assert math.isclose((f(eps) - f(-eps)) / (2 * eps), expected.item(), rel_tol=1e-4)


def test_rejected_gradient_is_linear_in_the_weights_at_fixed_margin():
    pi_w, ref_w, pi_l, ref_l, m_w, m_l = batch(B=1)
    w = torch.rand_like(m_l)
    a_l = pi_l.clone().requires_grad_(True)
    L.cdpo_seq_loss(pi_w, ref_w, a_l, ref_l, m_w, m_l, torch.ones_like(m_w), w, BETA).backward()
    ratio = a_l.grad[m_l > 0] / w[m_l > 0]
    assert torch.allclose(ratio, ratio[0].expand_as(ratio), rtol=1e-5)


def test_policy_equal_to_reference_gives_log2_everywhere():
    pi_w, _, pi_l, _, m_w, m_l = batch()
    ones = torch.ones_like(m_w)
    w = torch.rand_like(m_w)
    log2 = math.log(2)
    assert math.isclose(
        L.dpo_loss(pi_w, pi_w, pi_l, pi_l, m_w, m_l, BETA).item(), log2, rel_tol=1e-6
    )
    for fn in (L.cdpo_seq_loss, L.cdpo_code_loss):
        assert math.isclose(
            fn(pi_w, pi_w, pi_l, pi_l, m_w, m_l, w, w, BETA).item(), log2, rel_tol=1e-6
        )
    rpo0 = L.rpo_loss(pi_w, pi_w, pi_l, pi_l, m_w, m_l, BETA, alpha=0.0)
    assert math.isclose(rpo0.item(), log2, rel_tol=1e-6)
    logits = torch.randn(3, 8, 11)
    kl = L.sequential_kl(logits, logits, ones)
    assert torch.allclose(kl, torch.zeros(3), atol=1e-6)
    tdpo = L.tdpo_loss(pi_w, pi_w, pi_l, pi_l, m_w, m_l, kl, kl, BETA)
    assert math.isclose(tdpo.item(), log2, rel_tol=1e-6)


def test_tdpo_kl_is_positive_and_stops_gradient_on_chosen_kl():
    ref = torch.randn(2, 6, 9)
    pol = torch.randn(2, 6, 9, requires_grad=True)
    m = torch.ones(2, 5)
    kl = L.sequential_kl(ref, pol, m)
    assert torch.all(kl > 0)
    pi = torch.randn(2, 5, requires_grad=True)
    loss = L.tdpo_loss(pi, pi.detach(), pi, pi.detach(), m, m, kl, kl.detach() + 1, BETA)
    loss.backward()
    assert pol.grad is None  # ``pol`` only entered through D(x, y^w), whose gradient is stopped


def test_extra_right_padding_leaves_sequence_losses_unchanged():
    pi_w, ref_w, pi_l, ref_l, m_w, m_l = batch()
    w = torch.rand_like(m_w)

    def pad(x):
        return torch.nn.functional.pad(x, (0, 4))

    a = L.cdpo_seq_loss(pi_w, ref_w, pi_l, ref_l, m_w, m_l, w, w, BETA)
    b = L.cdpo_seq_loss(*(pad(x) for x in (pi_w, ref_w, pi_l, ref_l, m_w, m_l, w, w)), BETA)
    assert torch.allclose(a, b)
    assert torch.allclose(
        L.dpo_loss(pi_w, ref_w, pi_l, ref_l, m_w, m_l, BETA),
        L.dpo_loss(*(pad(x) for x in (pi_w, ref_w, pi_l, ref_l, m_w, m_l)), BETA),
    )


def test_layout_rejects_weights_of_the_wrong_length():
    from cdpo.train import layout

    with pytest.raises(ValueError, match="weights"):
        layout([[1, 2]], [[3, 4, 5]], 0, values=[[1.0, 1.0]])
    ids, att, mask, vals = layout([[1, 2]], [[3, 4, 5]], 0, values=[[0.1, 0.2, 0.3]])
    assert mask.tolist() == [[0, 1, 1, 1]]
    assert vals[0, 1:].tolist() == pytest.approx([0.1, 0.2, 0.3])
