import logging

import pytest
import torch
import torch.distributed as dist

from reprozoo import runtime


def test_pick_device_and_errors():
    assert runtime.pick_device("cpu") == torch.device("cpu")
    assert runtime.pick_device("auto").type in {"cpu", "cuda", "mps"}
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="not available"):
            runtime.pick_device("cuda")


def test_rng_state_round_trip():
    runtime.seed_everything(5)
    state = runtime.capture_rng_state()
    a = torch.rand(3)
    runtime.restore_rng_state(state)
    assert torch.equal(a, torch.rand(3))


def test_single_process_context():
    ctx = runtime.setup_distributed("cpu")
    assert ctx.is_main and ctx.world_size == 1 and not ctx.enabled
    assert torch.equal(runtime.all_reduce_mean(torch.ones(2)), torch.ones(2))


def _reduce_worker(rank, world_size, out_dir):
    ctx = runtime.setup_distributed("cpu")
    assert ctx.backend == "gloo" and ctx.rank == rank and ctx.world_size == world_size
    value = runtime.all_reduce_mean(torch.tensor([float(rank)]))
    if ctx.is_main:
        torch.save(value, f"{out_dir}/mean.pt")
    runtime.barrier()
    assert dist.is_initialized()


def test_two_process_gloo(tmp_path):
    runtime.run_multiprocess(_reduce_worker, world_size=2, args=(str(tmp_path),))
    assert torch.load(tmp_path / "mean.pt").item() == pytest.approx(0.5)


def test_run_header_logs_config_versions_device_seed(caplog):
    logger = runtime.get_logger("test")
    logger.parent.propagate = True
    try:
        with caplog.at_level(logging.INFO, logger="reprozoo"):
            runtime.log_run_header(
                logger, package="reprozoo", config={"lr": 1}, seed=3, device="cpu"
            )
    finally:
        logger.parent.propagate = False
    text = caplog.text
    assert '"lr": 1' in text and "seed=3" in text and "device=cpu" in text and "torch" in text


@pytest.mark.parametrize("env", ["0", "1"])
def test_progress_accepts_disable_with_and_without_env(monkeypatch, env):
    monkeypatch.setenv("REPROZOO_PROGRESS", env)
    assert list(runtime.progress(range(3), disable=True)) == [0, 1, 2]
    bar = runtime.progress(range(2))
    assert bar.disable == (env == "0")
    bar.close()
