"""The paper-scale networks (RobustBench names): WRN-28-10, ResNeXt-29 (AugMix), ResNet-50.

Parameter names follow the RobustBench / torchvision checkpoints so that their state dicts load
directly (`load_classifier`).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from reprozoo.checkpoint import CheckpointError


class _WideBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.equal = cin == cout
        self.convShortcut = None if self.equal else nn.Conv2d(cin, cout, 1, stride, 0, bias=False)

    def forward(self, x):
        o = self.relu1(self.bn1(x))
        y = self.conv2(self.relu2(self.bn2(self.conv1(o))))
        return y + (x if self.equal else self.convShortcut(o))


class _WideGroup(nn.Module):
    def __init__(self, n: int, cin: int, cout: int, stride: int):
        super().__init__()
        self.layer = nn.Sequential(
            *[_WideBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1) for i in range(n)]
        )

    def forward(self, x):
        return self.layer(x)


class WideResNet(nn.Module):
    """WRN-depth-width (RobustBench `Standard` is WRN-28-10); no input normalisation."""

    def __init__(self, depth: int = 28, widen: int = 10, num_classes: int = 10):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WideResNet depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        ch = [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv1 = nn.Conv2d(3, ch[0], 3, 1, 1, bias=False)
        self.block1 = _WideGroup(n, ch[0], ch[1], 1)
        self.block2 = _WideGroup(n, ch[1], ch[2], 2)
        self.block3 = _WideGroup(n, ch[2], ch[3], 2)
        self.bn1 = nn.BatchNorm2d(ch[3])
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(ch[3], num_classes)

    def forward(self, x):
        x = self.block3(self.block2(self.block1(self.conv1(x))))
        x = self.relu(self.bn1(x))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class _ResNeXtBottleneck(nn.Module):
    def __init__(
        self, cin: int, cout: int, stride: int, cardinality: int, base_width: int, widen: int
    ):
        super().__init__()
        d = cardinality * int(base_width * cout / (widen * 64.0))
        self.conv_reduce = nn.Conv2d(cin, d, 1, bias=False)
        self.bn_reduce = nn.BatchNorm2d(d)
        self.conv_conv = nn.Conv2d(d, d, 3, stride, 1, groups=cardinality, bias=False)
        self.bn = nn.BatchNorm2d(d)
        self.conv_expand = nn.Conv2d(d, cout, 1, bias=False)
        self.bn_expand = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        y = F.relu(self.bn_reduce(self.conv_reduce(x)))
        y = F.relu(self.bn(self.conv_conv(y)))
        y = self.bn_expand(self.conv_expand(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNeXt29AugMix(nn.Module):
    """ResNeXt-29 (cardinality 4, base width 32) with the AugMix model's internal
    normalisation (mean 0.5, std 0.5), RobustBench `Hendrycks2020AugMix_ResNeXt`."""

    def __init__(
        self,
        num_classes: int = 100,
        cardinality: int = 4,
        base_width: int = 32,
        blocks_per_stage: int = 3,
    ):
        super().__init__()
        self.register_buffer("mu", torch.full((1, 3, 1, 1), 0.5))
        self.register_buffer("sigma", torch.full((1, 3, 1, 1), 0.5))
        self.conv_1_3x3 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn_1 = nn.BatchNorm2d(64)
        stages, cin = [], 64
        for i, cout in enumerate((256, 512, 1024)):
            stage = nn.Sequential()
            for b in range(blocks_per_stage):
                stage.add_module(
                    f"stage_{i + 1}_bottleneck_{b}",
                    _ResNeXtBottleneck(
                        cin if b == 0 else cout,
                        cout,
                        2 if (b == 0 and i > 0) else 1,
                        cardinality,
                        base_width,
                        4,
                    ),
                )
            stages.append(stage)
            cin = cout
        self.stage_1, self.stage_2, self.stage_3 = stages
        self.classifier = nn.Linear(1024, num_classes)

    def forward(self, x):
        x = (x - self.mu) / self.sigma
        x = F.relu(self.bn_1(self.conv_1_3x3(x)))
        x = self.stage_3(self.stage_2(self.stage_1(x)))
        return self.classifier(F.adaptive_avg_pool2d(x, 1).flatten(1))


class ImageNetNormalized(nn.Module):
    """torchvision ResNet-50 behind ImageNet mean/std normalisation (RobustBench
    `Standard_R50`)."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        from torchvision.models import resnet50

        self.register_buffer("mu", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("sigma", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.model = resnet50(weights=None, num_classes=num_classes)

    def forward(self, x):
        return self.model((x - self.mu) / self.sigma)


ARCHITECTURES = {
    "wrn-28-10": lambda n: WideResNet(28, 10, n),
    "resnext-29": lambda n: ResNeXt29AugMix(n),
    "resnet-50": lambda n: ImageNetNormalized(n),
}


def build_architecture(name: str, num_classes: int) -> nn.Module:
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; choose one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[name](num_classes)


def load_classifier(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a checkpoint (`.pt` state dict, possibly under 'state_dict'/'model' and with a
    'module.' prefix, or `.safetensors`) into `model`, refusing missing files and mismatches."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {path}. Paper-scale runs need the RobustBench weights (e.g. "
            "`Standard.pt` for CIFAR-10, `Hendrycks2020AugMix_ResNeXt.pt` for CIFAR-100, "
            "`Standard_R50.pt` for ImageNet; see github.com/RobustBench/robustbench) saved "
            "to this path"
        )
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    state = {k.removeprefix("module."): v for k, v in state.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{path} does not fit the architecture: {exc}") from exc
    return model
