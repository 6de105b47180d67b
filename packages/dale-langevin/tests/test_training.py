"""Training, checkpoints, resume, save/load and torchrun on tiny models (spec §8.11)."""

import hashlib
import json
import socket

import pytest
import torch

from dale_langevin.config import DaleConfig
from dale_langevin.data import load_digits
from dale_langevin.model import NCSN, UNet, build_network
from dale_langevin.sample import generate
from dale_langevin.train import load_trained, train_model
from reprozoo.checkpoint import CheckpointError
from reprozoo.config import ConfigError
from reprozoo.runtime import run_multiprocess

TINY = DaleConfig(
    steps=30, checkpoint_every=10, levels=20, width=32, batch_size=32, n_samples=16, sample_batch=16
)


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the embedded pipeline must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def _weights(net):
    return torch.cat([p.detach().flatten() for p in net.parameters()])


def test_pipeline_runs_offline_and_is_deterministic(tmp_path, digits, no_network):
    a = train_model(TINY, digits, tmp_path / "a", seed=3, show_progress=False)
    b = train_model(TINY, digits, tmp_path / "b", seed=3, show_progress=False)
    torch.testing.assert_close(_weights(a.net), _weights(b.net), rtol=0, atol=0)
    sa = generate(a, digits, 16, sampler="dls", seed=1)
    sb = generate(b, digits, 16, sampler="dls", seed=1)
    assert sa.pixels.shape == (16, 1, 8, 8)
    assert bool(torch.isfinite(sa.pixels).all())
    assert float(sa.pixels.min()) >= 0 and float(sa.pixels.max()) <= 1
    torch.testing.assert_close(sa.pixels, sb.pixels, rtol=0, atol=0)
    assert sa.stats.min_value > 0 and sa.stats.nfe == TINY.levels


def test_interrupted_training_resumes_to_the_same_weights(tmp_path, digits):
    straight = train_model(TINY, digits, tmp_path / "straight", seed=0, show_progress=False)
    train_model(TINY.replace(steps=20), digits, tmp_path / "split", seed=0, show_progress=False)
    resumed = train_model(TINY, digits, tmp_path / "split", seed=0, show_progress=False)
    torch.testing.assert_close(_weights(straight.net), _weights(resumed.net), rtol=0, atol=0)
    assert resumed.losses == straight.losses


def test_corrupt_or_mismatched_checkpoint_is_refused(tmp_path, digits):
    cfg = TINY.replace(steps=10)
    train_model(cfg, digits, tmp_path / "run", seed=0, show_progress=False)
    with pytest.raises(CheckpointError, match="lr"):
        train_model(cfg.replace(lr=5e-4), digits, tmp_path / "run", seed=0, show_progress=False)
    state = tmp_path / "run" / "checkpoint" / "state.safetensors"
    data = bytearray(state.read_bytes())
    data[-5] ^= 0xFF
    state.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        train_model(cfg, digits, tmp_path / "run", seed=0, show_progress=False)


def test_trained_model_saves_and_loads_with_from_pretrained(tmp_path, digits):
    trained = train_model(
        TINY.replace(steps=5, arch="unet", width=8), digits, tmp_path / "u", show_progress=False
    )
    loaded = load_trained(tmp_path / "u")
    x, t = torch.rand(4, 1, 8, 8), torch.rand(4)
    torch.testing.assert_close(trained.net(x, t), loaded.net(x, t))
    assert loaded.cfg.arch == "unet" and loaded.sigma_max == trained.sigma_max
    with pytest.raises(CheckpointError, match="train one first"):
        load_trained(tmp_path / "missing")


def test_ncsn_level_conditioning_round_trip(tmp_path):
    net = NCSN(channels=1, ngf=8, time_embedding="level", n_levels=10)
    x, t = torch.rand(2, 1, 28, 28), torch.tensor([0.1, 1.0])
    out = net(x, t)
    assert out.shape == x.shape
    net.save_pretrained(tmp_path / "ncsn")
    again = NCSN.from_pretrained(str(tmp_path / "ncsn"))
    torch.testing.assert_close(again(x, t), out)
    # Different levels give different outputs: the conditioning reaches the output.
    assert not torch.allclose(net(x, torch.tensor([0.1, 0.1])), out)


def test_all_networks_keep_the_image_shape():
    for arch, size in (("unet", 8), ("mlp", 8), ("ncsn", 28)):
        net = build_network(arch, 1, size, 8, "sinusoidal", 10)
        assert net(torch.rand(3, 1, size, size), torch.rand(3)).shape == (3, 1, size, size)


def test_additive_baseline_trains_and_leaves_the_positive_orthant(tmp_path, digits):
    trained = train_model(TINY.replace(process="ve"), digits, tmp_path / "ve", show_progress=False)
    assert trained.sigma_max > 3  # largest pairwise distance between 8x8 digits
    s = generate(trained, digits, 16, seed=0)
    assert s.pixels.shape == (16, 1, 8, 8) and s.stats.nonpositive > 0


def test_bad_configs_are_rejected_before_any_work():
    with pytest.raises(ConfigError, match="offset"):
        DaleConfig(offset=0.0)
    with pytest.raises(ConfigError, match="weighting"):
        DaleConfig(weighting="sigma")
    with pytest.raises(ConfigError, match="28x28"):
        DaleConfig(arch="ncsn")


def _ddp_worker(rank, world_size, out, data_pixels):
    from dale_langevin.data import ImageData

    data = ImageData("digits", data_pixels, torch.zeros(len(data_pixels)), data_pixels[:4], None)
    trained = train_model(TINY.replace(steps=6), data, out, seed=0, show_progress=False)
    digest = hashlib.sha256(_weights(trained.net).numpy().tobytes()).hexdigest()
    with open(f"{out}/rank{rank}.json", "w") as fh:
        json.dump({"digest": digest, "world": world_size}, fh)


def test_training_runs_under_two_gloo_processes(tmp_path, digits):
    run_multiprocess(_ddp_worker, world_size=2, args=(str(tmp_path), digits.train[:256]))
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0]["digest"] == ranks[1]["digest"] and ranks[0]["world"] == 2
    assert (tmp_path / "model" / "dale_config.json").is_file()


def test_unet_forward_is_batch_independent():
    net = UNet(1, (8, 16)).eval()
    x, t = torch.rand(4, 1, 8, 8), torch.rand(4)
    torch.testing.assert_close(net(x, t)[:2], net(x[:2], t[:2]), atol=1e-5, rtol=1e-5)
