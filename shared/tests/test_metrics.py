import math

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from reprozoo import metrics as M


def test_uniform_prediction_closed_forms():
    k, n = 10, 200
    logits = torch.zeros(n, k)
    labels = torch.arange(n) % k
    out = M.classification_metrics(logits, labels)
    assert out["nll"] == pytest.approx(math.log(k))
    assert out["brier"] == pytest.approx(1 - 1 / k)


def test_confident_correct_prediction_is_perfect():
    labels = torch.tensor([0, 2, 1, 2])
    logits = 50.0 * torch.nn.functional.one_hot(labels, 3).double()
    out = M.classification_metrics(logits, labels)
    assert out["error"] == 0.0
    assert out["nll"] < 1e-12
    assert out["brier"] < 1e-12
    assert out["ece"] < 1e-12


def test_nll_brier_against_sklearn():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(300, 5, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 5, (300,), generator=gen)
    probs = logits.softmax(-1)
    assert M.nll(logits, labels) == pytest.approx(skm.log_loss(labels, probs, labels=range(5)))
    onehot = np.eye(5)[labels.numpy()]
    assert M.brier(probs, labels) == pytest.approx(((probs.numpy() - onehot) ** 2).sum(1).mean())
    assert 0 <= M.brier(probs, labels) <= 2
    assert M.error_rate(logits, labels) == pytest.approx(
        1 - skm.accuracy_score(labels, logits.argmax(1))
    )


def test_ece_by_hand():
    # Two bins used: conf 0.9 (one right, one wrong) and conf 0.6 (both right).
    probs = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]], dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 0])
    expected = 0.5 * abs(0.9 - 0.5) + 0.5 * abs(0.6 - 1.0)
    assert M.ece(probs, labels, n_bins=10) == pytest.approx(expected)


def test_roc_and_tar_against_sklearn():
    rng = np.random.default_rng(0)
    same = rng.random(2000) < 0.3
    scores = rng.normal(size=2000) + 1.5 * same
    scores[:50] = np.round(scores[:50], 1)  # some ties
    far, tar, thr = M.roc_curve(scores, same)
    sk_far, sk_tar, sk_thr = skm.roc_curve(same, scores, drop_intermediate=False)
    np.testing.assert_allclose(far, sk_far)
    np.testing.assert_allclose(tar, sk_tar)
    np.testing.assert_allclose(thr[1:], sk_thr[1:])
    for target in (1e-3, 1e-2, 1e-1):
        assert M.tar_at_far(scores, same, target) == pytest.approx(sk_tar[sk_far <= target].max())


def test_kfold_accuracy_separable_and_random():
    same = np.array([True, False] * 300)
    assert M.kfold_pair_accuracy(same.astype(float), same)[0] == 1.0
    rng = np.random.default_rng(1)
    mean, _ = M.kfold_pair_accuracy(rng.random(600), same)
    assert 0.4 < mean < 0.6


def test_frechet_distance_closed_form_and_kid():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    b = rng.normal(size=(4000, 3)) * 2 + 1
    # N(0, I) vs N(1, 4I): |mu|^2 + tr(I + 4I - 2*2I) = 3 + 3.
    assert M.frechet_distance(a, b) == pytest.approx(6.0, rel=0.08)
    assert M.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    same_mean, _ = M.kid(a[:1000], rng.normal(size=(1000, 3)), subset_size=200, n_subsets=20)
    diff_mean, _ = M.kid(a[:1000], b[:1000], subset_size=200, n_subsets=20)
    assert abs(same_mean) < 0.05 < diff_mean


def test_language_and_statistics():
    assert M.perplexity(10 * math.log(7), 10) == pytest.approx(7)
    assert M.bits_per_token(10 * math.log(2), 10) == pytest.approx(1)
    assert M.mean_std([1, 2, 3]) == pytest.approx((2, 1))
    d = M.paired_difference([2, 3, 4, 5], [1, 2, 3, 4.5])
    assert d["mean"] == pytest.approx(0.875)
    assert d["ci_low"] < d["mean"] < d["ci_high"]
    low, high = M.bootstrap_ci(np.arange(100), seed=0)
    assert low < 49.5 < high


def test_best_threshold_matches_brute_force():
    rng = np.random.default_rng(3)
    same = rng.random(400) < 0.5
    scores = np.round(rng.normal(size=400) + same, 1)  # many ties
    t = M._best_threshold(scores, same)
    best = max(((scores >= c) == same).mean() for c in np.r_[scores, scores.max() + 1])
    assert ((scores >= t) == same).mean() == pytest.approx(best)
