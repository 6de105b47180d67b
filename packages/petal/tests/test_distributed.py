"""Source training under torchrun semantics: 2 gloo processes stay in sync."""

import torch

from reprozoo.runtime import cleanup_distributed, run_multiprocess, setup_distributed


def _train_rank(rank, world_size, out_dir):
    from petal.model import SmallBNCNN
    from petal.train import SourceConfig, train_source

    dist = setup_distributed("cpu")
    try:
        torch.set_num_threads(1)
        torch.manual_seed(0)
        model = SmallBNCNN(num_classes=3, widths=(4, 8))
        gen = torch.Generator().manual_seed(1)
        x = torch.rand(32, 3, 16, 16, generator=gen)
        y = torch.randint(0, 3, (32,), generator=gen)
        train_source(
            model,
            x,
            y,
            SourceConfig(epochs=2, batch_size=16),
            seed=0,
            rank=dist.rank,
            world=dist.world_size,
        )
        flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        torch.save(flat, f"{out_dir}/rank{rank}.pt")
    finally:
        cleanup_distributed()


def test_two_gloo_processes_train_in_sync(tmp_path):
    run_multiprocess(_train_rank, world_size=2, args=(str(tmp_path),))
    a, b = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert torch.equal(a, b)
    torch.manual_seed(0)
    from petal.model import SmallBNCNN

    init = torch.cat([p.detach().reshape(-1) for p in SmallBNCNN(3, (4, 8)).parameters()])
    assert not torch.equal(a, init)
