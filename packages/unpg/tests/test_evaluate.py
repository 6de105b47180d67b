"""Verification metrics, protocols, diagnostics and the synthetic benchmark."""

import numpy as np
import pytest
import torch
from scipy.stats import ks_2samp, wasserstein_distance
from sklearn.metrics import roc_curve as sk_roc_curve

from reprozoo.metrics import kfold_pair_accuracy, tar_at_far
from unpg import evaluate as ev
from unpg.diagnostics import distances, mismatch, weighted_stats
from unpg.synth import SynthConfig, generate


def _scores(seed=0, n_pos=2000, n_neg=200_000):
    rng = np.random.default_rng(seed)
    scores = np.r_[rng.normal(1.5, 1, n_pos), rng.normal(0, 1, n_neg)]
    return scores, np.r_[np.ones(n_pos, bool), np.zeros(n_neg, bool)]


def test_tar_at_far_matches_sklearn_roc():
    scores, same = _scores()
    fpr, tpr, _ = sk_roc_curve(same, scores, drop_intermediate=False)
    for far in (1e-3, 1e-4, 1e-5):
        assert tar_at_far(scores, same, far) == pytest.approx(tpr[fpr <= far].max())
    rep = ev.verification_report(scores, same)
    assert rep["tar@1e-03"] >= rep["tar@1e-04"] >= rep["tar@1e-05"]
    nearest = tpr[np.argmin(np.abs(fpr - 1e-3))]
    assert rep["tar_nearest@1e-03"] == pytest.approx(nearest)


def test_quantile_and_nearest_far_agree_on_dense_roc():
    scores, same = _scores(1, n_pos=20_000, n_neg=400_000)
    for far in (1e-2, 1e-3):
        q = ev.quantile_tar(scores, same, far)
        assert q == pytest.approx(ev.nearest_far_tar(scores, same, far), abs=2e-3)
        assert q == pytest.approx(tar_at_far(scores, same, far), abs=1e-9)


def test_hand_made_tar():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    same = np.array([True, False, True, True, False, False])
    assert tar_at_far(scores, same, 0.0) == pytest.approx(1 / 3)
    assert tar_at_far(scores, same, 1 / 3) == pytest.approx(1.0)


def test_kfold_folds_identity_disjoint_and_brute_force():
    ident = torch.arange(400).repeat_interleave(4)
    fam = ident // 5
    pose = torch.rand(len(ident))
    a, b, same, fold = ev.kfold_pairs(ident, fam, pose, seed=0, folds=10, pairs_per_fold=30)
    ids_per_fold = [set(ident[a[fold == k]].tolist()) | set(ident[b[fold == k]].tolist())
                    for k in range(10)]  # fmt: skip
    for i in range(10):
        for j in range(i + 1, 10):
            assert not ids_per_fold[i] & ids_per_fold[j]
    assert (same == (ident[a] == ident[b]).numpy()).all()
    a_h, b_h, same_h, _ = ev.kfold_pairs(ident, fam, pose, seed=0, pairs_per_fold=30, hard=True)
    neg = ~same_h
    assert (fam[a_h[neg]] == fam[b_h[neg]]).float().mean() > 0.9
    # Brute force: every candidate threshold tried on the nine training folds.
    scores = np.random.default_rng(0).normal(size=len(a)) + same
    accs = []
    for k in range(10):
        train, test = fold != k, fold == k
        cands = np.r_[scores[train] - 1e-9, scores[train] + 1e-9]
        best = max(cands, key=lambda t: (((scores[train] >= t) == same[train]).mean(), -t))
        accs.append(((scores[test] >= best) == same[test]).mean())
    mean, _ = kfold_pair_accuracy(scores, same, fold_ids=fold)
    assert mean == pytest.approx(np.mean(accs), abs=0.01)


def test_template_pooling_and_wdfs_rate():
    emb = torch.tensor([[1.0, 0], [0, 1.0], [1.0, 0], [0.6, 0.8]])
    feats = ev.pool_templates(emb, np.array([0, 0, 0, 1]), np.array([0, 0, 1, 2]))
    # media 0 averages to (0.5, 0.5); adding media 1 gives (1.5, 0.5); then normalise.
    torch.testing.assert_close(feats[0], torch.tensor([1.5, 0.5]) / np.hypot(1.5, 0.5))
    e = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.99, 0.1], [0, 1.0], [0.1, 1]]))
    assert ev.local_wdfs_rate(e, torch.tensor([0, 0, 1, 1])) == 1.0
    assert ev.local_wdfs_rate(e, torch.tensor([0, 1, 0, 1])) == 0.0


def test_distances_against_scipy_and_weights():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 3000), rng.normal(0.3, 1.2, 2000)
    d = distances(a, b)
    assert d["w1"] == pytest.approx(wasserstein_distance(a, b), rel=1e-9)
    assert d["ks"] == pytest.approx(ks_2samp(a, b).statistic, rel=1e-9)
    # Integer weights are the same as repeating values.
    w = rng.integers(1, 4, len(a)).astype(float)
    rep = np.repeat(a, w.astype(int))
    assert distances(a, b, wa=w)["w1"] == pytest.approx(wasserstein_distance(rep, b), rel=1e-9)
    s = weighted_stats(a, w)
    assert s["mean"] == pytest.approx(rep.mean()) and s["max"] == a.max()


def test_mismatch_mixture_moves_towards_all_pairs():
    g = torch.Generator().manual_seed(0)
    common = 1.5 * torch.randn(16, generator=g)
    centres = common + torch.randn(50, 16, generator=g)
    labels = torch.arange(50).repeat_interleave(6)
    emb = centres[labels] + 0.5 * torch.randn(300, 16, generator=g)
    proxies = torch.randn(50, 16, generator=g)  # unrelated to the samples: P_CL sits near 0
    out = mismatch(emb, labels, proxies, batch_size=40, whisker=1.5, seed=0, batches=5)
    assert out["cl"]["mean"] < out["all"]["mean"] - 0.3
    # P_ML is a subsample of P_all; P_UN mixes P_CL with it, so (W1 is convex in mixtures)
    # it must be closer to P_all than P_CL is.
    assert out["ml"]["w1"] < 0.05 < out["cl"]["w1"]
    assert out["un"]["w1"] < out["cl"]["w1"] and out["un"]["ks"] < out["cl"]["ks"]


def test_synth_is_deterministic_with_label_noise():
    cfg = SynthConfig(train_families=20, test_families=4, images_per_identity=4, image_size=16)
    tr, te = generate(cfg)
    tr2, _ = generate(cfg)
    assert torch.equal(tr.images, tr2.images) and tr.images.shape == (400, 1, 16, 16)
    assert tr.images.abs().max() <= 1
    n_dup = round(0.015 * 100)
    assert tr.num_classes == 100 + n_dup
    split = [i for i in range(100) if len(torch.unique(tr.labels[tr.identity == i])) == 2]
    assert len(split) == n_dup
    assert te.images.shape == (80, 1, 16, 16) and len(torch.unique(te.identity)) == 20
