"""Invariants of the adaptation loop (spec 9.2)."""

import copy

import pytest
import torch

from petal.augment import augment_batch
from petal.config import ConfigError, profile
from petal.method import METHODS, build_adapter
from petal.model import grouped_batch_norm


def _cfg(method, **kw):
    kw.setdefault("n_aug", 3)
    kw.setdefault("aug_chunk", 2)
    return profile("embedded", method=method, batch_size=8, **kw)


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def test_registry_names():
    assert set(METHODS) == {"source", "bn", "tent", "cotta", "petal-sres", "petal-fim"}
    with pytest.raises(ConfigError):
        profile("embedded", method="memo")


@pytest.mark.parametrize("method", ["cotta", "petal-sres", "petal-fim"])
def test_anchor_teacher_and_source_invariants(method, tiny_model, posterior_for, batches):
    adapter = build_adapter(
        tiny_model, _cfg(method, ap=0.5), seed=0, posterior=posterior_for(tiny_model)
    )
    anchor0, source0 = _params(adapter.anchor), _params(adapter.source)
    student0 = _params(adapter.student)
    for x in batches:
        adapter(x)
        assert all(p.grad is None for p in adapter.teacher.parameters())
    assert all(torch.equal(a, b) for a, b in zip(anchor0, _params(adapter.anchor), strict=False))
    assert all(torch.equal(a, b) for a, b in zip(source0, _params(adapter.source), strict=False))
    assert all(torch.equal(a, b) for a, b in zip(student0, source0, strict=False))
    assert not all(
        torch.equal(a, b) for a, b in zip(student0, _params(adapter.student), strict=False)
    )


@pytest.mark.parametrize("ap", [0.0, 2.0, 0.4])
def test_petal_sres_without_prior_is_cotta(ap, tiny_model, posterior_for, batches):
    cotta = build_adapter(tiny_model, _cfg("cotta", ap=ap), seed=3)
    sres = build_adapter(
        tiny_model, _cfg("petal-sres", ap=ap, spw=0.0), seed=3, posterior=posterior_for(tiny_model)
    )
    for x in batches:
        assert torch.equal(cotta(x), sres(x))
        for a, b in zip(cotta.student.parameters(), sres.student.parameters(), strict=True):
            assert torch.equal(a, b)
        for a, b in zip(cotta.teacher.parameters(), sres.teacher.parameters(), strict=True):
            assert torch.equal(a, b)


def test_prior_changes_the_update(tiny_model, posterior_for, batches):
    post = posterior_for(tiny_model, scale=1e-4)
    a = build_adapter(tiny_model, _cfg("petal-sres", ap=0.0, spw=0.0), seed=0, posterior=post)
    b = build_adapter(tiny_model, _cfg("petal-sres", ap=0.0, spw=1e-2), seed=0, posterior=post)
    for x in batches:
        a(x), b(x)
    dist = [
        sum(((p - m) ** 2).sum() for p, m in zip(ad.student.parameters(), post.mean(), strict=True))
        for ad in (a, b)
    ]
    assert dist[1] < dist[0]  # the prior pulls the student toward μ


def test_fim_without_restoration_equals_sres_without_restoration(
    tiny_model, posterior_for, batches
):
    post = posterior_for(tiny_model)
    fim = build_adapter(tiny_model, _cfg("petal-fim", ap=0.5, perc=0.0), seed=0, posterior=post)
    sres = build_adapter(tiny_model, _cfg("petal-sres", ap=0.5, rst=0.0), seed=0, posterior=post)
    for x in batches:
        assert torch.equal(fim(x), sres(x))
        assert fim.last_restored == 0 and sres.last_restored == 0
    for a, b in zip(fim.student.parameters(), sres.student.parameters(), strict=True):
        assert torch.equal(a, b)


def test_fim_with_delta_one_restores_all_but_the_largest(tiny_model, posterior_for, batches):
    adapter = build_adapter(
        tiny_model, _cfg("petal-fim", ap=0.0, perc=1.0), seed=0, posterior=posterior_for(tiny_model)
    )
    n = sum(p.numel() for p in adapter.student.parameters())
    for x in batches:
        adapter(x)
        changed = sum(
            int((p != s).sum())
            for p, s in zip(adapter.student.parameters(), adapter.source.parameters(), strict=False)
        )
        assert adapter.last_restored >= n - 8 and changed <= n - adapter.last_restored


def test_trigger_threshold(tiny_model, batches):
    x = batches[0]
    never = build_adapter(tiny_model, _cfg("cotta", ap=0.0), seed=0)
    assert torch.equal(never.predict(x), never.teacher(x))
    assert not never.last_augmented
    always = build_adapter(tiny_model, _cfg("cotta", ap=1.5), seed=0)
    state = always.generator.get_state()
    out = always.predict(x)
    assert always.last_augmented
    gen = torch.Generator()
    gen.set_state(state)
    with torch.no_grad():
        views = torch.cat([augment_batch(x, 2, gen), augment_batch(x, 1, gen)])
        separate = torch.stack([always.teacher(views[i * 8 : (i + 1) * 8]) for i in range(3)])
    assert torch.allclose(out, separate.mean(0), atol=1e-5)


def test_grouped_batch_norm_equals_separate_passes(tiny_model):
    from petal.model import adaptable_copy

    model = adaptable_copy(tiny_model)
    x = torch.rand(3, 8, 3, 16, 16)
    with torch.no_grad():
        separate = torch.stack([model(x[i]) for i in range(3)])
        with grouped_batch_norm(model, 3):
            grouped = model(x.view(24, 3, 16, 16)).view(3, 8, -1)
        after = model(x[0])
    assert torch.allclose(separate, grouped, atol=1e-5)
    assert torch.equal(after, separate[0])  # the context restored the ordinary forward


@pytest.mark.parametrize("method", sorted(METHODS))
def test_prediction_is_made_before_the_update(method, tiny_model, posterior_for, batches):
    adapter = build_adapter(
        tiny_model, _cfg(method, ap=0.5), seed=0, posterior=posterior_for(tiny_model)
    )
    for x in batches:
        twin = copy.deepcopy(adapter)
        out = adapter(x)
        assert torch.allclose(out, twin.predict(x), atol=1e-6)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_same_seed_same_predictions(method, tiny_model, posterior_for, batches):
    outs = []
    for _ in range(2):
        adapter = build_adapter(
            tiny_model, _cfg(method, ap=0.5), seed=5, posterior=posterior_for(tiny_model)
        )
        outs.append(torch.cat([adapter(x) for x in batches]))
    assert torch.equal(*outs)


def test_tent_updates_only_batchnorm_affine(tiny_model, batches):
    adapter = build_adapter(tiny_model, _cfg("tent"), seed=0)
    before = {n: p.detach().clone() for n, p in adapter.model.named_parameters()}
    for x in batches:
        adapter(x)
    for n, p in adapter.model.named_parameters():
        is_bn = n.startswith("features") and p.dim() == 1
        assert torch.equal(before[n], p) != is_bn, n


def test_bad_inputs_are_refused(tiny_model):
    adapter = build_adapter(tiny_model, _cfg("bn"), seed=0)
    with pytest.raises(ValueError, match="shape"):
        adapter(torch.rand(8, 16, 16, 3))
    x = torch.rand(8, 3, 16, 16)
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        adapter(x)


def test_petal_needs_a_matching_posterior(tiny_model, posterior_for):
    with pytest.raises(ConfigError, match="posterior"):
        build_adapter(tiny_model, _cfg("petal-fim"), seed=0)
    from petal.model import SmallBNCNN

    other = posterior_for(SmallBNCNN(num_classes=5, widths=(4,)))
    with pytest.raises(ValueError, match="does not match"):
        build_adapter(tiny_model, _cfg("petal-fim"), seed=0, posterior=other)
