"""Procedural data, the small model's training (resume, DDP) and the trained experiments."""

import pytest
import torch

from perpneg.data import (
    GeneratorConfig,
    captions,
    clean_bank,
    parse_caption,
    render,
    render_batch,
    sample_attributes,
)
from perpneg.model import CaptionEncoder
from perpneg.train import TrainConfig, load_model, train_diffusion
from perpneg.trained import EvalConfig
from reprozoo.checkpoint import CheckpointError, load_state
from reprozoo.config import ConfigError
from reprozoo.runtime import run_multiprocess

TINY = TrainConfig(steps=4, batch_size=4, checkpoint_every=2, classifier_steps=1, warmup=1)


def test_data_distribution_and_captions():
    g = torch.Generator().manual_seed(0)
    cfg = GeneratorConfig()
    attrs = sample_attributes(20000, cfg, g)
    views = torch.bincount(attrs[:, 1], minlength=3).float() / 20000
    assert torch.allclose(views, torch.tensor(cfg.view_prior), atol=0.02)
    caps = captions(attrs, cfg, g)
    said = caps[:, 1] > 0
    right = (caps[said, 1] - 1 == attrs[said, 1]).float().mean()
    assert abs(float(right) - cfg.view_correct) < 0.03
    assert ((caps[:, 3] > 0) <= (attrs[:, 2] > 0)).all()  # a brim is only named on a hat
    imgs = render_batch(attrs[:8], g)
    assert imgs.shape == (8, 3, 16, 16) and imgs.min() >= -1 and imgs.max() <= 1
    assert torch.equal(clean_bank()[((1 * 3 + 2) * 3 + 1) * 9 + 4], render(1, 2, 1))
    assert parse_caption("square wearing a hat").tolist() == [2, 0, 1, 0]
    assert parse_caption("hat with a red brim").tolist() == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="unknown caption word"):
        parse_caption("purple dragon")


def test_distinct_views_render_differently():
    for shape in range(3):
        imgs = [render(shape, v, 0) for v in range(3)]
        assert all(not torch.equal(imgs[i], imgs[j]) for i in range(3) for j in range(i + 1, 3))


def test_encoder_is_frozen_and_round_trips(tmp_path):
    enc = CaptionEncoder(16)
    assert not any(p.requires_grad for p in enc.parameters())
    enc.save_pretrained(tmp_path / "enc")
    back = CaptionEncoder.from_pretrained(tmp_path / "enc")
    caps = torch.tensor([[1, 2, 1, 2], [0, 0, 0, 0]])
    assert torch.equal(enc(caps), back(caps))


def test_resume_gives_identical_weights(tmp_path):
    full = train_diffusion(TINY, tmp_path / "a", device="cpu")
    train_diffusion(TINY, tmp_path / "b", device="cpu", stop_after=2)
    state, meta = load_state(tmp_path / "b" / "checkpoint", package="perpneg")
    assert meta["step"] == 2
    resumed = train_diffusion(TINY, tmp_path / "b", device="cpu")
    (u1, _), (u2, _) = load_model(full), load_model(resumed)
    for p1, p2 in zip(u1.parameters(), u2.parameters(), strict=True):
        assert torch.equal(p1, p2)
    # A checkpoint of another configuration is refused.
    other = TrainConfig(steps=4, batch_size=4, checkpoint_every=2, lr=1e-3, warmup=1)
    with pytest.raises(CheckpointError):
        train_diffusion(other, tmp_path / "b", device="cpu")
    with pytest.raises(ConfigError, match="no trained model"):
        load_model(tmp_path)


def _ddp_worker(rank, world_size, out):
    train_diffusion(
        TrainConfig(steps=2, batch_size=2, checkpoint_every=2, warmup=1), out, device="cpu"
    )


def test_ddp_two_processes(tmp_path):
    run_multiprocess(_ddp_worker, world_size=2, args=(str(tmp_path),))
    unet, enc = load_model(tmp_path / "model")
    assert sum(p.numel() for p in unet.parameters()) > 0


def test_config_validation():
    with pytest.raises(ConfigError):
        TrainConfig(lr=2.0)
    with pytest.raises(ConfigError):
        TrainConfig(channels=(16, 30, 32))
    with pytest.raises(ConfigError):
        EvalConfig(scale=1.0)
    with pytest.raises(ValueError):
        EvalConfig(subject="dragon")
