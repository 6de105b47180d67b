import json

import pytest
import torch

from reprozoo.checkpoint import (
    CheckpointError,
    load_state,
    load_training_state,
    save_state,
    save_training_state,
)

CFG = {"lr": 0.1, "steps": 5}


def _setup():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 2)
    )
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.StepLR(opt, 2)
    return model, opt, sched


def _train(model, opt, sched, steps):
    for _ in range(steps):
        loss = model(torch.randn(16, 4)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()


def test_nested_state_round_trip(tmp_path):
    state = {"a": torch.arange(3), "b": [1, (2.5, "x")], 7: {"t": torch.ones(2, 2)}, "n": None}
    save_state(tmp_path / "ck", state, package="p", version="1", config=CFG, step=3)
    back, meta = load_state(tmp_path / "ck", package="p", config=CFG)
    assert meta["step"] == 3
    assert torch.equal(back["a"], state["a"]) and torch.equal(back[7]["t"], state[7]["t"])
    assert back["b"] == [1, (2.5, "x")] and back["n"] is None


def test_resume_gives_same_result_as_uninterrupted(tmp_path):
    model, opt, sched = _setup()
    _train(model, opt, sched, 6)
    reference = [p.detach().clone() for p in model.parameters()]

    model, opt, sched = _setup()
    _train(model, opt, sched, 3)
    mods = {"model": model}
    save_training_state(
        tmp_path / "ck",
        package="p",
        version="1",
        config=CFG,
        step=3,
        modules=mods,
        optimizers={"opt": opt},
        schedulers={"s": sched},
    )
    model, opt, sched = _setup()
    step, _ = load_training_state(
        tmp_path / "ck",
        package="p",
        config=CFG,
        modules={"model": model},
        optimizers={"opt": opt},
        schedulers={"s": sched},
    )
    assert step == 3
    _train(model, opt, sched, 3)
    for a, b in zip(reference, model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_refuses_corrupt_mismatched_and_foreign(tmp_path):
    save_state(tmp_path / "ck", {"w": torch.ones(10)}, package="p", version="1", config=CFG)
    with pytest.raises(CheckpointError, match="different config"):
        load_state(tmp_path / "ck", package="p", config={"lr": 0.2, "steps": 5})
    with pytest.raises(CheckpointError, match="package 'p'"):
        load_state(tmp_path / "ck", package="q")
    data = bytearray((tmp_path / "ck" / "state.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / "ck" / "state.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_state(tmp_path / "ck", package="p")
    (tmp_path / "ck" / "meta.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_state(tmp_path / "ck", package="p")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_state(tmp_path / "missing", package="p")


def test_overwrite_is_atomic_and_leaves_no_temporaries(tmp_path):
    for step in range(3):
        save_state(
            tmp_path / "ck",
            {"w": torch.full((2,), float(step))},
            package="p",
            version="1",
            config={},
            step=step,
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]
    meta = json.loads((tmp_path / "ck" / "meta.json").read_text())
    assert meta["step"] == 2


def test_save_pretrained_atomic_round_trip(tmp_path):
    from huggingface_hub import PyTorchModelHubMixin

    from reprozoo.checkpoint import save_pretrained_atomic

    class Tiny(torch.nn.Module, PyTorchModelHubMixin):
        def __init__(self, width: int = 3):
            super().__init__()
            self.lin = torch.nn.Linear(width, 2)

    model = Tiny(width=4)
    for _ in range(2):
        save_pretrained_atomic(model, tmp_path / "model")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert (tmp_path / "model" / "model.safetensors").is_file()
    back = Tiny.from_pretrained(tmp_path / "model")
    assert torch.equal(back.lin.weight, model.lin.weight)
