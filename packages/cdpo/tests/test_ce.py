"""Contrastive-score invariants (spec 7.2) and the analytic toy of spec 7.3.1."""

import numpy as np
import pytest
import torch

from cdpo.ce import auroc, contrastive_log_q, contrastive_scores, detection_metrics, log_ratio


def logits(shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 2


def test_scores_are_probabilities_and_q_sums_to_one():
    zp, zn = logits((4, 9, 13), 0), logits((4, 9, 13), 1)
    y = torch.randint(0, 13, (4, 9))
    s = contrastive_scores(zp, zn, y)
    assert torch.all((s > 0) & (s < 1))
    assert torch.allclose(contrastive_log_q(zp, zn).exp().sum(-1), torch.ones(4, 9))


def test_logits_and_log_probabilities_give_the_same_scores():
    zp, zn = logits((3, 5, 7), 2), logits((3, 5, 7), 3)
    y = torch.randint(0, 7, (3, 5))
    a = contrastive_scores(zp, zn, y, gamma=1.5)
    b = contrastive_scores(zp.log_softmax(-1), zn.log_softmax(-1) + 3.0, y, gamma=1.5)
    assert torch.allclose(a, b, atol=1e-6)


def test_gamma_zero_is_the_positive_model_probability():
    zp, zn = logits((2, 6, 8), 4), logits((2, 6, 8), 5)
    y = torch.randint(0, 8, (2, 6))
    p = zp.softmax(-1).gather(-1, y[..., None]).squeeze(-1)
    assert torch.allclose(contrastive_scores(zp, zn, y, gamma=0.0), p, atol=1e-6)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0])
def test_identical_models_give_p_and_a_zero_log_ratio(gamma):
    z = logits((2, 6, 8), 6)
    y = torch.randint(0, 8, (2, 6))
    p = z.softmax(-1).gather(-1, y[..., None]).squeeze(-1)
    # s_t is NOT zero where the models agree; the log-likelihood ratio r_t is.
    assert torch.allclose(contrastive_scores(z, z, y, gamma), p, atol=1e-6)
    assert torch.all(log_ratio(z, z, y) == 0)
    confident = torch.full((1, 1, 8), -20.0)
    confident[..., 3] = 20.0
    w = 1 - contrastive_scores(confident, confident, torch.tensor([[3]]), gamma)
    assert w.item() < 1e-6


def test_scores_are_monotone_in_each_model():
    y = torch.tensor([[0]])
    base = torch.zeros(1, 1, 5)
    up = base.clone()
    up[..., 0] = 1.0
    s = contrastive_scores(base, base, y)
    assert contrastive_scores(base, up, y) < s  # negative model likes y more: lower score
    assert contrastive_scores(up, base, y) > s  # positive model likes y more: higher score


def toy(noise: float, seed: int, T=12, V=5, k_star=7):
    """p+ and p- agree except at k*, where p- puts 0.9 on the written token and p+ 0.05."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, V, T)
    probs = np.full((T, V), 0.02)
    probs[np.arange(T), y] = 1 - 0.02 * (V - 1)
    p_pos, p_neg = probs.copy(), probs.copy()
    if noise:
        p_pos = (1 - noise) * p_pos + noise * rng.dirichlet(np.full(V, 0.3), T)
        p_neg = (1 - noise) * p_neg + noise * rng.dirichlet(np.full(V, 0.3), T)
    p_neg[k_star] = (1 - 0.9) / (V - 1)
    p_neg[k_star, y[k_star]] = 0.9
    p_pos[k_star] = (1 - 0.05) / (V - 1)
    p_pos[k_star, y[k_star]] = 0.05
    zp, zn = (torch.tensor(np.log(p)).float()[None] for p in (p_pos, p_neg))
    return contrastive_scores(zp, zn, torch.tensor(y)[None])[0], k_star


def test_analytic_toy_finds_the_critical_token_exactly():
    s, k = toy(0.0, 0)
    assert int(s.argmin()) == k
    m = detection_metrics([(1 - s).tolist()], [k])
    assert m["top1"] == 1 and m["precision@0.5"] == 1 and m["recall@0.5"] == 1


def test_toy_detection_degrades_smoothly_with_noise():
    tops = []
    for noise in (0.0, 0.5, 0.9, 1.0):
        res = [toy(noise, seed) for seed in range(30)]
        m = detection_metrics([(1 - s).tolist() for s, _ in res], [k for _, k in res])
        tops.append(m["auroc"])
    assert tops[0] == 1.0
    assert all(a >= b - 0.05 for a, b in zip(tops, tops[1:], strict=False))
    assert tops[-1] < 1.0


def test_auroc_matches_pairwise_counting():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 40).astype(float)  # ties on purpose
    labels = rng.random(40) < 0.3
    pos, neg = scores[labels], scores[~labels]
    brute = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert auroc(scores, labels) == pytest.approx(brute)


def test_scorer_matches_scores_recomputed_from_the_training_batch():
    from cdpo.ce import score_sequences
    from cdpo.config import profile, replace
    from cdpo.model import tiny_llama
    from cdpo.train import layout

    cfg = profile("quick")
    pos = tiny_llama(cfg, 20, 0, 1, 2).eval()
    neg = tiny_llama(replace(cfg, seed=1), 20, 0, 1, 2).eval()
    prompts = [[1, 5, 6], [1, 7, 8, 9, 10]]
    responses = [[11, 12, 13, 2], [14, 2]]
    seqs = [p + r for p, r in zip(prompts, responses, strict=True)]
    scored = score_sequences(pos, neg, seqs, [len(p) for p in prompts], 1.0, 0)
    ids, att, mask = layout(prompts, responses, 0)
    with torch.no_grad():
        zp = pos(input_ids=ids, attention_mask=att).logits[:, :-1]
        zn = neg(input_ids=ids, attention_mask=att).logits[:, :-1]
    s = contrastive_scores(zp, zn, ids[:, 1:])
    for i, r in enumerate(responses):
        assert len(scored[i]) == len(r)
        assert torch.allclose(torch.tensor(scored[i]), s[i][mask[i] > 0], atol=1e-5)
