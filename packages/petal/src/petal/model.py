"""The embedded source model and the BatchNorm configurations the adaptation methods need."""

from __future__ import annotations

import copy

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor, nn


class SmallBNCNN(nn.Module, PyTorchModelHubMixin):
    """A small CIFAR-shaped classifier: conv-BN-ReLU blocks, global average pooling, linear.

    No input normalisation layer (inputs in [0, 1]), like RobustBench's `Standard` WRN-28-10.
    Saves and loads with `save_pretrained` / `from_pretrained` (safetensors + config.json).
    """

    def __init__(self, num_classes: int = 10, widths: tuple[int, ...] = (16, 32, 64)):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        layers: list[nn.Module] = []
        in_ch = 3
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            layers += [
                nn.Conv2d(in_ch, w, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(w),
                nn.ReLU(inplace=True),
            ]
            in_ch = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(in_ch, num_classes)
        self.num_classes = num_classes
        self.widths = widths

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def use_batch_statistics(model: nn.Module) -> nn.Module:
    """Make every BatchNorm layer normalise with the current batch's statistics, always.

    Train mode with running statistics disabled and deleted, as in the CoTTA/PETAL/TENT code:
    nothing is accumulated by a forward pass, so a prediction depends only on its own batch.
    """
    model.train()
    for bn in batchnorm_layers(model):
        bn.track_running_stats = False
        bn.running_mean = None
        bn.running_var = None
        bn.num_batches_tracked = None
    return model


def adaptable_copy(model: nn.Module) -> nn.Module:
    """A deep copy with batch-statistics BatchNorm (the starting point of every adapter)."""
    return use_batch_statistics(copy.deepcopy(model))


def parameter_list(model: nn.Module) -> list[Tensor]:
    return [p for _, p in model.named_parameters()]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def check_images(x: Tensor, channels: int = 3) -> None:
    """Refuse inputs the models cannot take: wrong rank/channels, non-finite values."""
    if not isinstance(x, Tensor):
        raise TypeError(f"expected a torch.Tensor batch, got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(
            f"expected images of shape (B, {channels}, H, W) with values in [0, 1], got "
            f"{tuple(x.shape)}; convert HWC uint8 arrays with x.permute(0, 3, 1, 2) / 255"
        )
    if x.shape[0] < 2:
        raise ValueError("batch-statistics BatchNorm needs at least 2 images per batch")
    if not torch.isfinite(x).all():
        raise ValueError("the image batch contains NaN or infinite values; clean the input")


class grouped_batch_norm:
    """Context in which every BatchNorm layer of `model` normalises each of `groups` equal,
    consecutive slices of the batch with that slice's own statistics.

    A forward pass of n stacked augmented batches then equals n separate forward passes of
    batch-statistics BN (what the official code does one augmentation at a time), at the
    cost of one larger pass.
    """

    def __init__(self, model: nn.Module, groups: int):
        self.layers = batchnorm_layers(model)
        self.groups = groups

    def __enter__(self):
        for bn in self.layers:
            bn.forward = _grouped_forward(bn, self.groups)
        return self

    def __exit__(self, *exc):
        for bn in self.layers:
            del bn.forward
        return False


def _grouped_forward(bn: nn.modules.batchnorm._BatchNorm, groups: int):
    def forward(x: Tensor) -> Tensor:
        xg = x.reshape(groups, x.shape[0] // groups, *x.shape[1:])
        dims = [1] + list(range(3, xg.dim()))
        mean = xg.mean(dim=dims, keepdim=True)
        var = xg.var(dim=dims, unbiased=False, keepdim=True)
        shape = [1, 1, -1] + [1] * (xg.dim() - 3)
        y = (xg - mean) * torch.rsqrt(var + bn.eps)
        if bn.affine:
            y = y * bn.weight.view(shape) + bn.bias.view(shape)
        return y.reshape(x.shape)

    return forward
