"""Sampler checks: E-NFE formula, cache exactness, limits of tau-leaping, conditioning."""

import itertools
import math

import pytest
import torch

from radd.data import MarkovChain, OracleDenoiser
from radd.model import RADDModel
from radd.sampler import expected_nfe, sample, sample_ordered, unmask_rates
from radd.schedule import GeometricSchedule, LogLinearSchedule


def test_euler_equals_tweedie_for_loglinear_only():
    lin, geo = LogLinearSchedule(), GeometricSchedule()
    assert torch.allclose(
        unmask_rates(lin, 64, "euler"), unmask_rates(lin, 64, "tweedie"), atol=1e-9
    )
    assert not torch.allclose(unmask_rates(geo, 64, "euler"), unmask_rates(geo, 64, "tweedie"))


@pytest.mark.parametrize("length", [16, 128, 1024])
def test_expected_nfe_formula_matches_simulation(length):
    # Unmask times of independent tokens, no network: a step costs one call if any token moves.
    # Each token's unmasking step is drawn from its exact distribution Delta_k (inverse CDF).
    s = LogLinearSchedule()
    g = torch.Generator().manual_seed(length)
    for steps in (16, 256, 2048):
        rho = unmask_rates(s, steps)
        cdf = 1 - torch.cumprod(1 - rho, 0)
        u = torch.rand(400, length, generator=g, dtype=torch.float64)
        first = torch.searchsorted(cdf, u).clamp_max(steps - 1).sort(dim=1).values
        nfe = 1 + (first[:, 1:] != first[:, :-1]).sum(1).double()
        formula = expected_nfe(steps, length)
        assert abs(nfe.mean().item() - formula) < 4 * nfe.std().item() / math.sqrt(400) + 0.05
        assert abs(expected_nfe(steps, length, s) - formula) < 0.01 * formula


class CountingDummy(torch.nn.Module):
    """A deterministic denoiser whose output depends on the input; counts its calls."""

    def __init__(self, vocab=6, length=64):
        super().__init__()
        self.vocab_size, self.mask_id, self.length = vocab, vocab, length
        self.time_conditioned = False

    def forward(self, x):
        logits = torch.sin(x[..., None].double() * torch.arange(1, self.vocab_size + 1))
        logits = logits + torch.cos(x.double().cumsum(1))[..., None]
        return logits.log_softmax(-1)


def test_cached_and_uncached_samplers_give_identical_samples():
    model, s = CountingDummy(), LogLinearSchedule()
    runs = {
        cache: sample(
            model, 32, 64, 256, s, cache=cache, generator=torch.Generator().manual_seed(7)
        )
        for cache in (True, False)
    }
    assert torch.equal(runs[True].tokens, runs[False].tokens)
    assert (runs[False].nfe == 256).all()
    cached = runs[True].nfe.double()
    se = cached.std().item() / math.sqrt(32)
    assert abs(cached.mean().item() - expected_nfe(256, 64)) < 4 * se + 0.5
    assert cached.max() < 256


def test_final_step_unmasks_everything_and_fixed_tokens_stay():
    model, s = CountingDummy(), LogLinearSchedule()
    fixed = torch.full((1, 64), -1)
    fixed[0, :5], fixed[0, -3:] = torch.tensor([0, 1, 2, 3, 4]), torch.tensor([5, 5, 5])
    for steps in (1, 3, 50):
        out = sample(
            model, 8, 64, steps, s, fixed=fixed, generator=torch.Generator().manual_seed(0)
        )
        assert (out.tokens != model.mask_id).all()
        assert (out.tokens < model.vocab_size).all()
        assert torch.equal(out.tokens[:, :5], fixed[0, :5].expand(8, 5))
        assert torch.equal(out.tokens[:, -3:], fixed[0, -3:].expand(8, 3))
    ordered = sample_ordered(model, 4, 64, fixed=fixed, generator=torch.Generator().manual_seed(0))
    assert torch.equal(ordered.tokens[:, :5], fixed[0, :5].expand(4, 5))
    assert ordered.calls == 64 - 8 and (ordered.tokens != model.mask_id).all()


def _empirical(tokens, V):
    idx = (tokens * torch.tensor([V * V, V, 1])).sum(1)
    return torch.bincount(idx, minlength=V**3).double() / len(tokens)


def test_tau_leaping_error_vanishes_with_many_steps():
    # Tiny world V = 3, L = 3 with the exact q: many steps sample p_0, one step the product of
    # its marginals (all tokens drawn at once from q(. | all masked)).
    chain = MarkovChain(3, alpha=0.5, seed=1)
    oracle, s, n = OracleDenoiser(chain), LogLinearSchedule(), 6000
    oracle.length = 3
    states = torch.tensor(list(itertools.product(range(3), repeat=3)))
    p0 = chain.log_prob(states).exp()
    marg = oracle(torch.full((1, 3), 3))[0].exp()
    product = marg[0][states[:, 0]] * marg[1][states[:, 1]] * marg[2][states[:, 2]]

    def chi2(emp, p):
        return (n * (emp - p) ** 2 / p).sum().item()

    many = sample(oracle, n, 3, 400, s, generator=torch.Generator().manual_seed(0)).tokens
    one = sample(oracle, n, 3, 1, s, generator=torch.Generator().manual_seed(1)).tokens
    # chi-square with 26 degrees of freedom: 99.9 % quantile is about 54.
    assert chi2(_empirical(many, 3), p0) < 54
    assert chi2(_empirical(one, 3), product) < 54
    assert chi2(_empirical(one, 3), p0) > 54


def test_random_model_sampler_counts_match_e_nfe():
    torch.manual_seed(0)
    model = RADDModel(11, 32, 16, 1, 2).eval()
    out = sample(model, 64, 32, 64, LogLinearSchedule(), generator=torch.Generator().manual_seed(0))
    nfe = out.nfe.double()
    assert abs(nfe.mean().item() - expected_nfe(64, 32)) < 4 * nfe.std().item() / 8 + 0.5
    with pytest.raises(ValueError, match="exceeds"):
        sample(model, 1, 33, 4, LogLinearSchedule())


def test_expected_nfe_at_the_papers_length_matches_the_published_curve():
    # L = 1024: the repo's E-NFE figure shows about 647, 806 and 906 calls at 1k, 2k, 4k steps.
    for steps, published in ((1024, 647.5), (2048, 806.0), (4096, 906.1)):
        assert abs(expected_nfe(steps, 1024) - published) < 0.5
        assert abs(expected_nfe(steps, 1024, LogLinearSchedule()) - published) < 1.0
