"""Training: resume to the same result, checkpoint refusal, torchrun (2 gloo processes),
save/load of the backbone, and the CLI's error paths."""

import dataclasses
import json

import pytest
import torch

from reprozoo.checkpoint import CheckpointError
from reprozoo.runtime import run_multiprocess
from unpg.cli import main
from unpg.config import PROFILES, TrainConfig
from unpg.model import IResNet
from unpg.train import TensorSource, batch_indices, lr_factor, train

CFG = dataclasses.replace(PROFILES["smoke"], steps=6, batch_size=16, image_size=8,
                          arch="iresnet-micro", embedding_size=16, unpg=True)  # fmt: skip


def _source(n=64, classes=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TensorSource(torch.randn(n, 1, 8, 8, generator=g), torch.arange(n) % classes)


def _weights(trainee):
    return {k: v.clone() for k, v in trainee.state_dict().items()}


def test_resume_reproduces_uninterrupted_run(tmp_path):
    full, hist = train(CFG, _source(), tmp_path / "a", seed=3)
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in hist)
    train(CFG, _source(), tmp_path / "b", seed=3, stop_after=3)
    resumed, _ = train(CFG, _source(), tmp_path / "b", seed=3)
    a, b = _weights(full), _weights(resumed)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_checkpoint_mismatch_and_corruption_refused(tmp_path):
    train(CFG, _source(), tmp_path, seed=0, stop_after=2)
    with pytest.raises(CheckpointError, match="different config"):
        train(dataclasses.replace(CFG, whisker=1.0), _source(), tmp_path, seed=0)
    state = tmp_path / "checkpoint" / "state.safetensors"
    raw = bytearray(state.read_bytes())
    middle = len(raw) // 2
    raw[middle : middle + 8] = bytes(b ^ 0xFF for b in raw[middle : middle + 8])
    state.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError):
        train(CFG, _source(), tmp_path, seed=0)


def test_schedule_and_data_order():
    factors = [lr_factor(s, 100, 0.1) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[9:], factors[10:], strict=False))
    assert factors[-1] < 0.01
    first = torch.cat([batch_indices(s, 64, 16, 0) for s in range(4)])
    assert sorted(first.tolist()) == list(range(64))  # one epoch covers every image once
    assert torch.equal(batch_indices(5, 64, 16, 0), batch_indices(5, 64, 16, 0))


def test_backbone_save_and_load(tmp_path):
    model = IResNet("iresnet-micro", 1, 8, 16).eval()
    model.save_pretrained(tmp_path / "m")
    again = IResNet.from_pretrained(tmp_path / "m").eval()
    x = torch.randn(3, 1, 8, 8)
    torch.testing.assert_close(model(x), again(x))


def _ddp_worker(rank, world, out):
    """Two processes: the UNPG loss with gathered pairs equals the single-process full batch,
    and a short DDP training run works."""
    from reprozoo.runtime import setup_distributed
    from unpg.heads import CosFace
    from unpg.method import UNPGLoss

    dist = setup_distributed("cpu")
    torch.manual_seed(0)
    x = torch.randn(16, 8, dtype=torch.float64)
    y = torch.arange(16) % 5
    head = CosFace(8, 5, s=16.0).double()
    local = x[rank * 8 : (rank + 1) * 8].clone().requires_grad_(True)
    loss = UNPGLoss(head)(local, y[rank * 8 : (rank + 1) * 8])
    loss.backward()
    torch.save({"loss": loss.detach(), "grad": local.grad, "wgrad": head.weight.grad},
               f"{out}/rank{rank}.pt")  # fmt: skip
    cfg = dataclasses.replace(CFG, steps=2)
    train(cfg, _source(), f"{out}/run", seed=0, dist=dist)


def test_torchrun_two_processes_match_full_batch(tmp_path):
    run_multiprocess(_ddp_worker, world_size=2, args=(str(tmp_path),))
    from unpg.heads import CosFace
    from unpg.method import UNPGLoss

    torch.manual_seed(0)
    x = torch.randn(16, 8, dtype=torch.float64).requires_grad_(True)
    y = torch.arange(16) % 5
    head = CosFace(8, 5, s=16.0).double()
    full = UNPGLoss(head)(x, y)
    full.backward()
    parts = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    torch.testing.assert_close((parts[0]["loss"] + parts[1]["loss"]) / 2, full.detach())
    # Each rank's embedding gradient is the sum over both ranks' losses: 2x the full mean's.
    torch.testing.assert_close(torch.cat([p["grad"] for p in parts]) / 2, x.grad)
    torch.testing.assert_close((parts[0]["wgrad"] + parts[1]["wgrad"]) / 2, head.weight.grad)
    assert (tmp_path / "run" / "checkpoint" / "meta.json").exists()


def test_cli_errors_are_clean(tmp_path, capsys):
    assert main(["train", "--profile", "smoke", "--lr", "-1", "--out", str(tmp_path)]) == 2
    assert "lr > 0" in capsys.readouterr().err
    code = main(["train", "--profile", "paper", "--data-root", str(tmp_path), "--out",
                 str(tmp_path / "o")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and str(tmp_path) in err and "train.rec" in err and "insightface" in err
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "--whisker" in capsys.readouterr().out


def test_cli_train_saves_model_and_config(tmp_path):
    out = tmp_path / "run"
    args = ["train", "--profile", "smoke", "--steps", "3", "--out", str(out), "--unpg"]
    assert main(args) == 0
    saved = json.loads((out / "train_config.json").read_text())
    assert saved["unpg"] is True and TrainConfig(**saved).steps == 3
    model = IResNet.from_pretrained(out / "model")
    assert model(torch.randn(2, 1, 24, 24)).shape == (2, 128)
