"""Stream protocol, checkpoint/resume and refusal of bad checkpoints."""

import json

import pytest
import torch

from petal.config import profile
from petal.data import Domain
from petal.method import build_adapter
from petal.stream import StreamInterrupted, run_stream
from reprozoo.checkpoint import CheckpointError


@pytest.fixture
def domains():
    gen = torch.Generator().manual_seed(0)
    return [
        Domain(
            f"d{i}",
            5,
            torch.rand(24, 3, 16, 16, generator=gen),
            torch.randint(0, 5, (24,), generator=gen),
        )
        for i in range(3)
    ]


def _adapter(model, posterior, method="petal-fim"):
    cfg = profile("embedded", method=method, batch_size=8, ap=0.5, n_aug=2)
    return build_adapter(model, cfg, seed=0, posterior=posterior)


def test_metrics_per_domain(tiny_model, posterior_for, domains):
    res = run_stream(_adapter(tiny_model, posterior_for(tiny_model)), domains, 8)
    assert res.domains == ["d0", "d1", "d2"] and len(res.batch_errors) == 9
    for m in res.metrics:
        assert 0 <= m["error"] <= 1 and m["nll"] > 0 and 0 <= m["brier"] <= 2


@pytest.mark.parametrize("method", ["tent", "cotta", "petal-sres", "petal-fim"])
def test_interrupted_run_resumes_to_the_same_result(
    method, tiny_model, posterior_for, domains, tmp_path
):
    post = posterior_for(tiny_model)
    full = run_stream(_adapter(tiny_model, post, method), domains, 8)
    ckpt = tmp_path / "state"
    with pytest.raises(StreamInterrupted):
        run_stream(
            _adapter(tiny_model, post, method),
            domains,
            8,
            checkpoint=ckpt,
            checkpoint_every=2,
            stop_after=5,
        )
    resumed = run_stream(
        _adapter(tiny_model, post, method), domains, 8, checkpoint=ckpt, checkpoint_every=2
    )
    assert resumed.metrics == full.metrics
    assert resumed.batch_errors == full.batch_errors


def test_corrupt_or_mismatched_checkpoint_is_refused(tiny_model, posterior_for, domains, tmp_path):
    post = posterior_for(tiny_model)
    ckpt = tmp_path / "state"
    run_stream(
        _adapter(tiny_model, post), domains, 8, checkpoint=ckpt, config={"method": "petal-fim"}
    )
    with pytest.raises(CheckpointError, match="different config"):
        run_stream(
            _adapter(tiny_model, post), domains, 8, checkpoint=ckpt, config={"method": "cotta"}
        )
    state = ckpt / "state.safetensors"
    state.write_bytes(state.read_bytes()[:-7] + b"garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        run_stream(
            _adapter(tiny_model, post), domains, 8, checkpoint=ckpt, config={"method": "petal-fim"}
        )
    meta = json.loads((ckpt / "meta.json").read_text())
    assert meta["package"] == "petal"
