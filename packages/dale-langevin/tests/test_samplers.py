"""Sampler checks of spec §8 (5–9): exact-score recovery, positivity, VE equivalence, schedules."""

import functools
import math

import numpy as np
import pytest
import torch
from scipy import stats

from dale_langevin.method import (
    Schedule,
    dls_step,
    lognormal_mixture_hyvarinen,
    sample_gbm,
    ums_step,
    ve_em_step,
)
from dale_langevin.sde import GBM

MEANS, STDS, WEIGHTS = (0.05, 0.6), (0.10, 0.12), (0.5, 0.5)
N_SAMPLES = 10_000
KS_CRITICAL = 1.36 / math.sqrt(N_SAMPLES)  # 5% two-sided critical value


def mixture_cdf(x):
    lx = np.log(np.clip(x, 1e-300, None))
    return sum(w * stats.norm.cdf(lx, m, s) for m, s, w in zip(MEANS, STDS, WEIGHTS, strict=True))


@functools.cache
def exact_run(N: int, sampler: str, kind: str, seed: int = 1):
    """Sample the log-normal mixture with its exact Hyvärinen score, from the exact p_T."""
    gbm = GBM(N=N)
    gen = torch.Generator().manual_seed(seed)
    comp = torch.randint(0, 2, (N_SAMPLES,), generator=gen)
    m = torch.tensor(MEANS, dtype=torch.float64)[comp] + gbm.log_drift * gbm.T
    s = torch.sqrt(torch.tensor(STDS, dtype=torch.float64)[comp] ** 2 + gbm.sigma**2 * gbm.T)
    x_T = torch.exp(m + s * torch.randn(N_SAMPLES, generator=gen, dtype=torch.float64))

    def h(x, t):
        return lognormal_mixture_hyvarinen(x, t, MEANS, STDS, WEIGHTS, gbm)

    sched = Schedule.make(kind, gbm, "mnist", sampler)
    x, st = sample_gbm(h, x_T, gbm, sampler, sched, gen)
    return stats.kstest(x.numpy(), mixture_cdf).statistic, st


def test_exact_score_dls_recovers_the_mixture_and_error_shrinks_with_steps():
    # §8.5: consistent schedule, δ = 1/N, a ≡ 1.
    ks_1000, st = exact_run(1000, "dls", "consistent")
    ks_50, _ = exact_run(50, "dls", "consistent")
    assert ks_1000 < KS_CRITICAL
    assert ks_50 > 2 * ks_1000
    assert st.min_value > 0 and st.nonpositive == 0 and st.nfe == 1000


def test_exact_score_ums_matches_and_stays_positive_for_small_steps():
    # §8.6: UMS at δ = 1/N is comparable and never leaves the positive orthant here.
    ks, st = exact_run(1000, "ums", "consistent")
    assert ks < KS_CRITICAL
    assert st.nonpositive == 0


def test_paper_tuned_schedule_is_biased_even_with_the_exact_score():
    # §8.9: δ = 6.165e-4, L = 1, r = 0.995 covers ~0.6 of the horizon with a cold noise.
    ks_paper, st = exact_run(1000, "dls", "paper")
    ks_consistent, _ = exact_run(1000, "dls", "consistent")
    assert ks_paper > 0.03 > ks_consistent
    assert st.nfe == 1000


def test_schedules_have_the_published_step_counts():
    gbm = GBM()
    assert Schedule.make("consistent", gbm).nfe(1000, 1.0) == 1000
    assert Schedule.make("paper", gbm, "mnist", "ums").nfe(1000, 1.0) == 4000
    assert Schedule.make("paper", gbm, "kmnist", "dls").nfe(1000, 1.0) == 3000
    # Piecewise: 900 levels × 1 + 50 × 2 + 25 × 3 + 25 × 3.
    assert Schedule.make("piecewise", gbm).nfe(1000, 1.0) == 900 + 100 + 75 + 75
    with pytest.raises(ValueError, match="schedule"):
        Schedule.make("fast", gbm)


def test_large_steps_can_flip_ums_signs_but_never_dls():
    # §8.6: the ambient (sign-agnostic) update can cross zero; the exponentiated one cannot.
    gbm = GBM()
    gen = torch.Generator().manual_seed(0)
    x = torch.ones(10_000, dtype=torch.float64)
    z = torch.randn(10_000, generator=gen, dtype=torch.float64)
    h = torch.zeros_like(x)
    delta = 2.0
    assert int((ums_step(x, h, delta, 1.0, z, gbm) <= 0).sum()) > 0
    y, _ = dls_step(torch.log(x), h, delta, 1.0, z, gbm)
    assert bool((torch.exp(y) > 0).all())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("magnitude", [1e3, -1e3])
def test_dls_positivity_under_adversarial_scores(dtype, magnitude):
    # §8.7: scores of ±10³ (and random signs) never produce a non-positive or infinite iterate;
    # the overflow guard fires and is counted.
    gbm = GBM(N=200)
    gen = torch.Generator().manual_seed(0)

    def adversarial(x, t):
        signs = torch.sign(torch.randn(x.shape, generator=gen, dtype=x.dtype))
        return magnitude * (signs if t < 0.5 else torch.ones_like(x))

    x_T = torch.exp(torch.randn(256, generator=gen, dtype=dtype))
    x, st = sample_gbm(adversarial, x_T, gbm, "dls", Schedule.make("consistent", gbm), gen)
    assert bool(torch.isfinite(x).all()) and bool((x > 0).all())
    assert st.min_value > 0
    assert st.guard_hits > 0


def test_dls_step_equals_log_domain_ve_euler_maruyama():
    # §8.8: with μ = σ²/2, DLS in log space is EM of dY = −σ² ∇_y log p_Y dt + σ dW̄ (reversed),
    # with ∇_y log p_Y = h + 1 (§1.4); both code paths, shared noise, float64.
    gbm = GBM(sigma=0.8, mu=0.32)
    gen = torch.Generator().manual_seed(2)
    y = torch.randn(1000, generator=gen, dtype=torch.float64)
    h = torch.randn(1000, generator=gen, dtype=torch.float64)
    z = torch.randn(1000, generator=gen, dtype=torch.float64)
    delta = 1e-3
    y_dls, _ = dls_step(y, h, delta, 1.0, z, gbm)
    y_ve = ve_em_step(y, h + 1.0, delta, gbm.sigma**2, 1.0, z)
    torch.testing.assert_close(y_dls, y_ve, atol=1e-12, rtol=0)
    # And the exponentiated-gradient form: x ← x ∘ exp(η (h + 1)) ∘ exp(σ√δ z), η = δσ².
    x = torch.exp(y)
    x_eg = (
        x * torch.exp(delta * gbm.sigma**2 * (h + 1)) * torch.exp(gbm.sigma * math.sqrt(delta) * z)
    )
    torch.testing.assert_close(torch.exp(y_dls), x_eg, atol=1e-12, rtol=1e-12)


def test_sampling_is_deterministic_given_the_generator():
    gbm = GBM(N=50)

    def h(x, t):
        return -torch.log(x)

    x_T = torch.exp(torch.randn(64, dtype=torch.float64))
    a, _ = sample_gbm(h, x_T, gbm, "dls", Schedule(), torch.Generator().manual_seed(7))
    b, _ = sample_gbm(h, x_T, gbm, "dls", Schedule(), torch.Generator().manual_seed(7))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
