"""Closed-form checks of spec §8 (1–4, 10, 12): forward process, loss, prior."""

import math

import numpy as np
import pytest
import torch
from scipy import optimize, stats

from dale_langevin.method import code_form_residual, hyvarinen_nonneg_objective, mdsm_loss
from dale_langevin.sde import GBM, PositivityError, check_positive, fit_lognormal_prior

GBM_PAPER = GBM()


@pytest.mark.parametrize("t", [0.1, 0.5, 1.0])
def test_forward_closed_form_matches_ambient_euler_maruyama(t):
    # §8.1: simulate dX = μX dt + σX dW in ambient space (fine EM) and compare with §1.3.
    gen = torch.Generator().manual_seed(1)
    n, steps, x0 = 10_000, 1000, 1.5
    dt = t / steps
    x = torch.full((n,), x0, dtype=torch.float64)
    for _ in range(steps):
        dw = math.sqrt(dt) * torch.randn(n, generator=gen, dtype=torch.float64)
        x = x + GBM_PAPER.mu * x * dt + GBM_PAPER.sigma * x * dw
    z = torch.randn(n, generator=gen, dtype=torch.float64)
    direct = GBM_PAPER.forward_sample(torch.full((n,), x0, dtype=torch.float64), torch.tensor(t), z)
    assert stats.ks_2samp(x.numpy(), direct.numpy()).pvalue > 0.01
    # E[X_t] = x0 e^{μt}, within 4 standard errors.
    expected = x0 * math.exp(GBM_PAPER.mu * t)
    assert abs(float(direct.mean()) - expected) < 4 * float(direct.std()) / math.sqrt(n)


def test_transition_density_integrates_to_one_and_kernel_score_is_its_gradient():
    x0, t = torch.tensor(1.3, dtype=torch.float64), torch.tensor(0.4, dtype=torch.float64)
    grid = torch.linspace(1e-3, 30, 20_001, dtype=torch.float64)
    pdf = torch.exp(GBM_PAPER.transition_logpdf(grid, x0, t))
    assert abs(float(torch.trapezoid(pdf, grid)) - 1) < 1e-3
    xt = torch.tensor([0.5, 1.0, 2.7], dtype=torch.float64, requires_grad=True)
    GBM_PAPER.transition_logpdf(xt, x0, t).sum().backward()
    h = GBM_PAPER.kernel_hyvarinen(xt.detach(), x0, t)
    torch.testing.assert_close(xt.grad * xt.detach(), h)


def test_mdsm_least_squares_minimiser_is_the_true_hyvarinen_score():
    # §8.2: regress the M-DSM target on (1, log x_t); the fit is the exact log-normal score.
    gen = torch.Generator().manual_seed(0)
    m0, s0, t, n = 0.3, 0.2, torch.tensor(0.5, dtype=torch.float64), 400_000
    x0 = torch.exp(m0 + s0 * torch.randn(n, generator=gen, dtype=torch.float64))
    z = torch.randn(n, generator=gen, dtype=torch.float64)
    xt = GBM_PAPER.forward_sample(x0, t, z)
    target = GBM_PAPER.hyvarinen_target(z, t)
    design = torch.stack([torch.ones(n, dtype=torch.float64), torch.log(xt)], 1)
    a, b = torch.linalg.lstsq(design, target[:, None]).solution.flatten().tolist()
    m_t, v_t = m0 + GBM_PAPER.log_drift * 0.5, s0**2 + GBM_PAPER.sigma**2 * 0.5
    assert a == pytest.approx(-1 + m_t / v_t, rel=0.01)
    assert b == pytest.approx(-1 / v_t, rel=0.01)


def test_small_network_trained_on_mdsm_learns_the_true_score():
    # §8.2, second half: an MLP h(log x) trained with mdsm_loss at fixed t.
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    m0, s0, t = 0.3, 0.2, torch.tensor(0.5)
    net = torch.nn.Sequential(torch.nn.Linear(1, 32), torch.nn.SiLU(), torch.nn.Linear(32, 1))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(600):
        x0 = torch.exp(m0 + s0 * torch.randn(512, 1, generator=gen))
        z = torch.randn(512, 1, generator=gen)
        xt = GBM_PAPER.forward_sample(x0, t, z)
        loss = mdsm_loss(net(torch.log(xt)), z, t, GBM_PAPER, "eps")
        opt.zero_grad()
        loss.backward()
        opt.step()
    m_t, v_t = m0 + GBM_PAPER.log_drift * 0.5, s0**2 + GBM_PAPER.sigma**2 * 0.5
    y = m_t + math.sqrt(v_t) * torch.randn(20_000, 1, generator=gen)
    with torch.no_grad():
        err = (net(y) - (-1 - (y - m_t) / v_t)).pow(2).mean().sqrt()
    assert float(err) < 0.05


def test_explicit_and_denoising_losses_differ_by_a_constant():
    # §8.3: J_E(θ) − J_D(θ) does not depend on θ (common random numbers, linear h_θ).
    gen = torch.Generator().manual_seed(3)
    n, m0, s0, t = 1_000_000, 0.2, 0.3, torch.tensor(0.3, dtype=torch.float64)
    x0 = torch.exp(m0 + s0 * torch.randn(n, generator=gen, dtype=torch.float64))
    z = torch.randn(n, generator=gen, dtype=torch.float64)
    xt = GBM_PAPER.forward_sample(x0, t, z)
    m_t, v_t = m0 + GBM_PAPER.log_drift * 0.3, s0**2 + GBM_PAPER.sigma**2 * 0.3
    exact = -1 - (torch.log(xt) - m_t) / v_t
    target = GBM_PAPER.hyvarinen_target(z, t)
    gaps = []
    for a, b in [(0.0, 0.0), (-1.0, -2.0), (0.5, -5.0), (-2.0, 1.0)]:
        h = a + b * torch.log(xt)
        gaps.append(float(((h - exact) ** 2).mean() - ((h - target) ** 2).mean()))
    # The θ-dependent part is 2 E[h_θ (target − exact)], zero in expectation: spread ≈ MC error.
    assert max(gaps) - min(gaps) < 0.05 * abs(np.mean(gaps))


def test_hyvarinen_2007_nonnegative_score_matching_recovers_lognormal_parameters():
    # §8.4: minimise E[2xψ + x²ψ' + ½x²ψ²] over log-normal (m, s); ψ = d/dx log p.
    gen = torch.Generator().manual_seed(4)
    m_true, s_true = 0.4, 0.5
    x = torch.exp(m_true + s_true * torch.randn(100_000, generator=gen, dtype=torch.float64))

    def objective(params):
        m, s = params
        u = (torch.log(x) - m) / s**2
        psi = -(1 + u) / x
        dpsi = (1 + u) / x**2 - 1 / (s**2 * x**2)
        return float(hyvarinen_nonneg_objective(x, psi, dpsi))

    m_hat, s_hat = optimize.minimize(objective, [0.0, 1.0], method="Nelder-Mead").x
    assert m_hat == pytest.approx(m_true, rel=0.02)
    assert abs(s_hat) == pytest.approx(s_true, rel=0.02)


def test_code_form_residual_equals_weighted_mdsm_residual_and_no_off_by_one():
    # §8.10: σ²t·h + log(x_t/x_0) + (3σ²/2 − μ)t = σ²t (h + 1 + z/(σ√t)), with the SAME t.
    gen = torch.Generator().manual_seed(5)
    gbm = GBM(sigma=0.8, mu=0.5)  # μ ≠ σ²/2 so the drift terms matter
    x0 = 1 + torch.rand(64, 1, generator=gen, dtype=torch.float64)
    t = torch.rand(64, 1, generator=gen, dtype=torch.float64) * 0.99 + 0.01
    z = torch.randn(64, 1, generator=gen, dtype=torch.float64)
    h = torch.randn(64, 1, generator=gen, dtype=torch.float64)
    xt = gbm.forward_sample(x0, t, z)
    lhs = code_form_residual(h, xt, x0, t, gbm)
    rhs = gbm.sigma**2 * t * (h + 1 + z / (gbm.sigma * torch.sqrt(t)))
    torch.testing.assert_close(lhs, rhs, atol=1e-10, rtol=0)
    # The loss with weighting "paper" is exactly the code-form residual squared.
    loss = mdsm_loss(h, z, t, gbm, "paper")
    torch.testing.assert_close(loss, lhs.pow(2).sum(1).mean(), atol=1e-10, rtol=0)
    # The off-by-one of the released code (loss at (k+1)/N) would leave a residual at h*.
    h_star = gbm.hyvarinen_target(z, t)
    assert float(code_form_residual(h_star, xt, x0, t, gbm).abs().max()) < 1e-10
    shifted = code_form_residual(h_star, xt, x0, t + 1e-3, gbm)
    assert float(shifted.abs().max()) > 1e-4


def test_training_noises_and_scores_at_the_same_time(monkeypatch):
    # The time given to the network and to the loss is the time used for noising.
    from dale_langevin import train as train_mod
    from dale_langevin.config import DaleConfig

    seen = {}

    def spy(h, z, t, gbm, weighting):
        seen["loss_t"] = t.flatten().clone()
        return h.sum() * 0

    def fake_forward(self, x0, t, z):
        seen["noise_t"] = t.flatten().clone()
        return x0 * torch.exp(self.log_drift * t + self.sigma * torch.sqrt(t) * z)

    monkeypatch.setattr(train_mod, "mdsm_loss", spy)
    monkeypatch.setattr(GBM, "forward_sample", fake_forward)
    net = torch.nn.Conv2d(1, 1, 1)
    wrapped = lambda x, t: net(x)  # noqa: E731
    cfg = DaleConfig(levels=10)
    train_mod.batch_loss(wrapped, cfg, torch.rand(16, 1, 8, 8), torch.Generator(), 1.0)
    torch.testing.assert_close(seen["loss_t"].float(), seen["noise_t"].float())
    assert float(seen["noise_t"].min()) >= 0.1 - 1e-6  # level 0 (t = 0) is never trained


def test_prior_fit_matches_forward_noised_data():
    # §8.12: (m, s) from the data equals the moments of forward-noised data at T.
    gen = torch.Generator().manual_seed(6)
    x0 = 1 + torch.rand(4000, 1, 4, 4, generator=gen, dtype=torch.float64) ** 2
    m, s = fit_lognormal_prior(torch.log(x0), GBM_PAPER)
    xT = GBM_PAPER.forward_sample(
        x0, torch.tensor(1.0), torch.randn(x0.shape, generator=gen, dtype=torch.float64)
    )
    assert float(m) == pytest.approx(float(torch.log(xT).mean()), abs=1e-2)
    assert float(s) == pytest.approx(float(torch.log(xT).std()), abs=1e-2)
    m_pp, s_pp = fit_lognormal_prior(torch.log(x0), GBM_PAPER, per_pixel=True)
    assert m_pp.shape == (1, 4, 4) and bool((s_pp > GBM_PAPER.sigma).all())


def test_non_positive_data_is_refused_with_a_clear_message():
    with pytest.raises(PositivityError, match="offset"):
        check_positive(torch.tensor([0.5, 0.0, 1.0]))
    with pytest.raises(PositivityError, match="NaN"):
        check_positive(torch.tensor([0.5, float("nan")]))
