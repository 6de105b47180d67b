"""IResNet backbones (the insightface / UNPG face-recognition ResNet), at paper and CPU sizes.

The block is the "improved" residual unit: BN → conv3×3 → BN → PReLU → conv3×3 (stride) → BN,
with a 1×1 strided projection on the shortcut when the shape changes. The output layer is
BN2d → dropout → flatten → Linear → BN1d (no affine scale), giving the embedding ``x``.
"""

from __future__ import annotations

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

ARCHS = {
    # name: (blocks per stage, stage widths, stem width)
    "iresnet18": ((2, 2, 2, 2), (64, 128, 256, 512), 64),
    "iresnet34": ((3, 4, 6, 3), (64, 128, 256, 512), 64),
    "iresnet50": ((3, 4, 14, 3), (64, 128, 256, 512), 64),
    "iresnet100": ((3, 13, 30, 3), (64, 128, 256, 512), 64),
    # CPU size for the embedded benchmark (spec section 6.4, narrowed for 2 cores).
    "iresnet-tiny": ((1, 1, 1), (32, 64, 128), 16),
    "iresnet-micro": ((1, 1, 1), (16, 32, 64), 16),
}


class IBasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(inplanes, eps=1e-5),
            nn.Conv2d(inplanes, planes, 3, 1, 1, bias=False),
            nn.BatchNorm2d(planes, eps=1e-5),
            nn.PReLU(planes),
            nn.Conv2d(planes, planes, 3, stride, 1, bias=False),
            nn.BatchNorm2d(planes, eps=1e-5),
        )
        self.shortcut = nn.Identity()
        if stride != 1 or inplanes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class IResNet(nn.Module, PyTorchModelHubMixin):
    """Face embedding network; ``IResNet.from_pretrained(path)`` restores a saved one.

    Args:
        arch: one of :data:`ARCHS` (``iresnet50``/``iresnet100`` for the paper).
        in_channels: 3 for RGB faces, 1 for the grayscale synthetic benchmark.
        image_size: square input side (112 in the paper); must be divisible by 2^stages.
        embedding_size: d (512 in the paper).
        dropout: dropout before the last linear layer (0 by default, as in the UNPG code).
    """

    def __init__(
        self,
        arch: str = "iresnet50",
        in_channels: int = 3,
        image_size: int = 112,
        embedding_size: int = 512,
        dropout: float = 0.0,
    ):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")
        blocks, widths, stem = ARCHS[arch]
        if image_size % (2 ** len(widths)):
            raise ValueError(
                f"{arch} halves the image {len(widths)} times; image_size={image_size} must be "
                f"divisible by {2 ** len(widths)}"
            )
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem), nn.PReLU(stem)
        )
        layers, inplanes = [], stem
        for n, planes in zip(blocks, widths, strict=True):
            for i in range(n):
                layers.append(IBasicBlock(inplanes, planes, 2 if i == 0 else 1))
                inplanes = planes
        self.stages = nn.Sequential(*layers)
        side = image_size // 2 ** len(widths)
        self.bn2 = nn.BatchNorm2d(inplanes)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(inplanes * side * side, embedding_size)
        self.features = nn.BatchNorm1d(embedding_size, affine=False)
        self.embedding_size = embedding_size

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h = self.stages(self.stem(images))
        h = self.dropout(torch.flatten(self.bn2(h), 1))
        return self.features(self.fc(h))
