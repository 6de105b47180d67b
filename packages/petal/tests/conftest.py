import os

import pytest
import torch

os.environ.setdefault("REPROZOO_PROGRESS", "0")
torch.set_num_threads(1)


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    from petal.model import SmallBNCNN

    return SmallBNCNN(num_classes=5, widths=(4, 8))


@pytest.fixture
def posterior_for():
    from petal.method import Posterior

    def make(model, scale=1e-2):
        gen = torch.Generator().manual_seed(1)
        mean = {n: p.detach().clone() for n, p in model.named_parameters()}
        var = {n: scale * torch.rand(p.shape, generator=gen) for n, p in model.named_parameters()}
        return Posterior(mean, var)

    return make


@pytest.fixture
def batches():
    gen = torch.Generator().manual_seed(2)
    return [torch.rand(8, 3, 16, 16, generator=gen) for _ in range(4)]
