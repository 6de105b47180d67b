"""Closed-form checks of the schedules, the corruption families and the four estimators."""

import itertools
import math

import numpy as np
import pytest
import torch

from radd.data import MarkovChain, OracleDenoiser
from radd.losses import LOSSES, Noise, draw_noise, exact_ao, fixed_order_nll, per_sequence_loss
from radd.model import RADDModel
from radd.schedule import (
    GeometricSchedule,
    LogLinearSchedule,
    log_expm1,
    mask_by_probability,
    mask_exactly_k,
    mask_probability,
)

SCHEDULES = [LogLinearSchedule(), GeometricSchedule()]


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_rate_is_derivative_of_total(schedule):
    t = torch.linspace(0.01, 0.99, 50, dtype=torch.float64)
    h = 1e-6
    fd = (schedule.total(t + h) - schedule.total(t - h)) / (2 * h)
    assert torch.allclose(fd, schedule.rate(t), rtol=1e-4)


def test_loglinear_closed_forms():
    s = LogLinearSchedule()
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    assert s.total(torch.zeros(1, dtype=torch.float64)).item() == 0.0
    assert torch.allclose(mask_probability(s, t), (1 - s.eps) * t, atol=1e-12)
    assert math.isclose(s.total(torch.ones(1, dtype=torch.float64)).item(), math.log(1 / s.eps))


def test_log_expm1_matches_direct_formula():
    x = torch.tensor([1e-4, 0.1, 0.49, 0.51, 3.0, 20.0], dtype=torch.float64)
    assert torch.allclose(log_expm1(x), torch.log(torch.expm1(x)), rtol=1e-12)


def test_forward_marginals_and_k_corruption():
    g = torch.Generator().manual_seed(0)
    x0 = torch.zeros(2000, 50, dtype=torch.long)
    s = LogLinearSchedule()
    t = torch.full((2000,), 0.3, dtype=torch.float64)
    u = torch.rand(2000, 50, generator=g, dtype=torch.float64)
    x_t, mask = mask_by_probability(x0, mask_probability(s, t), u, mask_id=9)
    p = 0.3 * (1 - s.eps)
    n = mask.numel()
    assert abs(mask.float().mean().item() - p) < 4 * math.sqrt(p * (1 - p) / n)
    assert (x_t[mask] == 9).all() and (x_t[~mask] == 0).all()
    k = torch.randint(0, 51, (2000,), generator=g)
    _, mask = mask_exactly_k(x0, k, u, mask_id=9)
    assert torch.equal(mask.sum(dim=1), k)


def test_code_t_dce_extra_term_has_zero_mean():
    # int sigma e^{-sigma_bar} log(e^{sigma_bar} - 1) dt over the code's t range [1e-3, 1].
    s = LogLinearSchedule()
    t = torch.linspace(1e-3, 1.0, 2_000_001, dtype=torch.float64)
    f = s.rate(t) * torch.exp(-s.total(t)) * log_expm1(s.total(t))
    assert abs(torch.trapezoid(f, t).item()) < 1e-5


def test_lambda_dce_gives_every_size_k_subset_weight_one_over_k():
    # int_0^1 (1/lambda) lambda^k (1 - lambda)^(L - k) d lambda * C(L, k) = 1/k (Gauss-Legendre).
    nodes, weights = np.polynomial.legendre.leggauss(20)
    lam, w = (nodes + 1) / 2, weights / 2
    for L in range(1, 11):
        for k in range(1, L + 1):
            integral = np.sum(w * lam ** (k - 1) * (1 - lam) ** (L - k)) * math.comb(L, k)
            assert math.isclose(integral, 1 / k, rel_tol=1e-12)


def _random_model(vocab, length, time_conditioned=False, seed=0):
    torch.manual_seed(seed)
    model = RADDModel(vocab, length, 16, 1, 2, time_conditioned=time_conditioned, cond_dim=16)
    torch.nn.init.normal_(model.out.weight, std=0.5)
    if time_conditioned:
        torch.nn.init.normal_(model.ada_out.weight, std=0.5)
    return model.eval()


def test_dse_equals_t_dce_pathwise_for_radd():
    model, s = _random_model(11, 20), LogLinearSchedule()
    x0 = torch.randint(0, 11, (16, 20))
    noise = draw_noise("t_dse", 16, 20, torch.Generator().manual_seed(1))
    with torch.no_grad():
        dse = per_sequence_loss(model, x0, noise, "t_dse", s)
        dce = per_sequence_loss(model, x0, noise, "t_dce", s)
    assert torch.allclose(dse, dce, rtol=1e-6, atol=1e-8)


def test_dse_exceeds_dce_by_r_times_r_minus_one_minus_log_r_for_unnormalised_scores():
    model, s = _random_model(11, 20, time_conditioned=True), LogLinearSchedule()
    x0 = torch.randint(0, 11, (16, 20))
    noise = draw_noise("t_dse", 16, 20, torch.Generator().manual_seed(2))
    with torch.no_grad():
        dse = per_sequence_loss(model, x0, noise, "t_dse", s)
        dce = per_sequence_loss(model, x0, noise, "t_dce", s)
        sigma_bar = s.total(noise.level)
        x_t, mask = mask_by_probability(x0, -torch.expm1(-sigma_bar), noise.u, 11)
        log_s = model(x_t, sigma_bar.float()).double()
    r = torch.exp(-log_expm1(sigma_bar))[:, None]
    R = log_s.exp().sum(-1) / r
    gap = (1 - 1e-3) * s.rate(noise.level) * (r * (R - 1 - R.log()) * mask).sum(1)
    assert torch.allclose(dse - dce, gap, rtol=1e-5, atol=1e-6)
    assert (dse >= dce - 1e-9).all()


def test_estimators_are_nonnegative_except_the_code_t_dce():
    model, s = _random_model(7, 12), LogLinearSchedule()
    x0 = torch.randint(0, 7, (64, 12))
    with torch.no_grad():
        for loss in ("t_dse", "t_dce", "lambda_dce", "ao"):
            for seed in range(5):
                noise = draw_noise(loss, 64, 12, torch.Generator().manual_seed(seed))
                assert (per_sequence_loss(model, x0, noise, loss, s) >= 0).all()


def test_oracle_estimators_are_unbiased_for_the_exact_nll():
    chain, s = MarkovChain(5, seed=3), LogLinearSchedule()
    oracle = OracleDenoiser(chain)
    x0 = chain.sample(16, 10, torch.Generator().manual_seed(0))
    nll = -chain.log_prob(x0)
    # AO per order is -log p(x) by the chain rule, and so is the exact AO expectation.
    order = torch.randperm(10, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(fixed_order_nll(oracle, x0, order), nll, rtol=1e-10)
    assert math.isclose(exact_ao(oracle, x0[0]), nll[0].item(), rel_tol=1e-10)
    for loss in ("lambda_dce", "ao", "t_dce", "t_dse"):
        g = torch.Generator().manual_seed(4)
        draws = torch.stack(
            [
                per_sequence_loss(oracle, x0, draw_noise(loss, 16, 10, g), loss, s)
                for _ in range(300)
            ]
        ).mean(dim=1)
        se = draws.std().item() / math.sqrt(len(draws))
        # t-losses drop lambda < 1e-3 and add a (1 - eps_s) factor: an O(1e-3) bias.
        slack = 4 * se + (3e-3 * nll.mean().item() if loss.startswith("t_") else 0.0)
        assert abs(draws.mean().item() - nll.mean().item()) < slack, loss


def test_ao_bound_is_above_order_mixture_nll_in_a_tiny_world():
    # V = 3, L = 3, arbitrary q: E_pi[-log prod q] >= -log E_pi[prod q] (Jensen), every x.
    model = _random_model(3, 3, seed=5)
    orders = [torch.tensor(p) for p in itertools.permutations(range(3))]
    x0 = torch.tensor(list(itertools.product(range(3), repeat=3)))
    with torch.no_grad():
        per_order = torch.stack([fixed_order_nll(model, x0, o) for o in orders])
        mixture = -torch.logsumexp(-per_order, 0) + math.log(len(orders))
        ao = torch.tensor([exact_ao(model, x) for x in x0], dtype=torch.float64)
    assert (ao >= mixture - 1e-9).all()
    assert torch.allclose(ao, per_order.mean(dim=0), rtol=1e-6)


def test_theorem_1_by_enumeration():
    # p_t(x_hat) / p_t(x) = e^{-sigma_bar} / (1 - e^{-sigma_bar}) p_0(x^i = v | x^UM).
    V, L, M = 3, 3, 3
    p0 = torch.rand(V**L, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    p0 = (p0 / p0.sum()).view(V, V, V)
    clean = list(itertools.product(range(V), repeat=L))
    for t in (0.1, 0.5, 0.9):
        sigma_bar = LogLinearSchedule().total(torch.tensor(t, dtype=torch.float64)).item()
        keep = math.exp(-sigma_bar)

        def p_t(state, keep=keep):
            total = 0.0
            for x in clean:
                if all(s in (xi, M) for s, xi in zip(state, x, strict=True)):
                    n_m = sum(s == M for s in state)
                    total += p0[x].item() * keep ** (L - n_m) * (1 - keep) ** n_m
            return total

        for state in itertools.product(range(V + 1), repeat=L):
            for i in (j for j in range(L) if state[j] == M):
                visible = [
                    x for x in clean if all(s in (xi, M) for s, xi in zip(state, x, strict=True))
                ]
                z = sum(p0[x].item() for x in visible)
                for v in range(V):
                    hat = tuple(v if j == i else s for j, s in enumerate(state))
                    cond = sum(p0[x].item() for x in visible if x[i] == v) / z
                    ratio = p_t(hat) / p_t(state)
                    assert math.isclose(
                        ratio, keep / (1 - keep) * cond, rel_tol=1e-12, abs_tol=1e-15
                    )


def test_all_losses_run_on_a_batch():
    model, s = _random_model(7, 12), LogLinearSchedule()
    x0 = torch.randint(0, 7, (4, 12))
    for loss in LOSSES:
        noise = draw_noise(loss, 4, 12, torch.Generator().manual_seed(0), "stratified")
        assert isinstance(noise, Noise)
        out = per_sequence_loss(model, x0, noise, loss, s)
        assert out.shape == (4,) and torch.isfinite(out).all()
