"""Training: resume, distributed equivalence, checkpoint refusal, bad configs, save/load."""

import dataclasses

import pytest
import torch

from radd.config import TrainConfig, profile
from radd.model import RADDModel
from radd.train import load_corpus, train
from reprozoo.checkpoint import CheckpointError
from reprozoo.config import ConfigError
from reprozoo.runtime import run_multiprocess

TINY = profile("markov", steps=6, batch_size=8, markov_sequences=64, checkpoint_every=0)


def test_resume_reproduces_the_uninterrupted_loss_curve(tmp_path):
    full = train(TINY, 1, tmp_path / "full", quiet=True)
    train(TINY, 1, tmp_path / "cut", stop_after=3, quiet=True)
    resumed = train(TINY, 1, tmp_path / "cut", resume=True, quiet=True)
    assert resumed["history"] == full["history"]
    for a, b in zip(full["model"].parameters(), resumed["model"].parameters(), strict=True):
        assert torch.equal(a, b)


def test_corrupt_or_mismatched_checkpoint_is_refused(tmp_path):
    train(TINY, 0, tmp_path, stop_after=2, quiet=True)
    with pytest.raises(CheckpointError, match="different config"):
        train(dataclasses.replace(TINY, lr=5e-4), 0, tmp_path, resume=True, quiet=True)
    state = tmp_path / "checkpoint" / "state.safetensors"
    data = bytearray(state.read_bytes())
    data[-10] ^= 0xFF
    state.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        train(TINY, 0, tmp_path, resume=True, quiet=True)


def _ddp_worker(rank, world_size, out):
    result = train(TINY, 3, out, quiet=True)
    if rank == 0:
        torch.save(
            {"history": result["history"], "state": result["model"].state_dict()},
            f"{out}/result.pt",
        )


def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path):
    single = train(TINY, 3, tmp_path / "one", quiet=True)
    run_multiprocess(_ddp_worker, world_size=2, args=(str(tmp_path / "two"),))
    ddp = torch.load(tmp_path / "two" / "result.pt")
    assert torch.allclose(torch.tensor(ddp["history"]), torch.tensor(single["history"]), rtol=1e-5)
    for name, p in single["model"].state_dict().items():
        assert torch.allclose(ddp["state"][name], p, atol=1e-5), name


@pytest.mark.parametrize(
    "change, message",
    [
        ({"loss": "kl"}, "loss"),
        ({"length": 0}, "length"),
        ({"model_size": "huge"}, "model-size"),
        ({"time_conditioned": True, "loss": "ao"}, "time-conditioned"),
        ({"ema": 1.5}, "ema"),
    ],
)
def test_bad_configs_are_refused(change, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**change)


def test_empty_corpus_and_too_long_sequences_are_refused(tmp_path):
    corpus = load_corpus(TINY)
    with pytest.raises(ConfigError, match="empty"):
        train(TINY, 0, tmp_path, corpus={**corpus, "train": corpus["train"][:0]}, quiet=True)
    model = RADDModel(8, 12, 16, 1, 2)
    with pytest.raises(ValueError, match="exceeds the model's length"):
        model(torch.zeros(1, 13, dtype=torch.long))


def test_model_round_trips_through_save_pretrained(tmp_path):
    torch.manual_seed(0)
    model = RADDModel(8, 12, 16, 1, 2, time_conditioned=True, cond_dim=16)
    torch.nn.init.normal_(model.out.weight)
    model.save_pretrained(tmp_path)
    loaded = RADDModel.from_pretrained(tmp_path)
    x, sigma = torch.randint(0, 9, (2, 12)), torch.tensor([0.5, 2.0])
    assert loaded.time_conditioned and torch.equal(model(x, sigma), loaded(x, sigma))
    assert (tmp_path / "model.safetensors").exists()


def test_fresh_radd_model_is_uniform_and_time_free():
    model = RADDModel(8, 12, 16, 1, 2)
    log_q = model(torch.randint(0, 9, (2, 12)))
    assert torch.allclose(log_q, torch.full_like(log_q, -torch.log(torch.tensor(8.0))))
    with pytest.raises(TypeError):
        model.time_embed(torch.zeros(1))
