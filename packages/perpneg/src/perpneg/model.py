"""The small conditional diffusion model and the attribute classifier of the trained part.

* `CaptionEncoder`: a frozen bag-of-words text encoder. Each caption slot (subject, view, hat,
  brim) owns a fixed random embedding per word and one for "not mentioned", so an embedding is
  a (4, D) token sequence and linear interpolation between captions stays meaningful.
* `make_unet`: a pixel-space diffusers `UNet2DConditionModel` for 16×16 RGB images.
* `AttributeClassifier`: a small CNN with one head per attribute, the evaluator.
"""

from __future__ import annotations

import torch
from diffusers import UNet2DConditionModel
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from perpneg.data import SIZE, SLOTS


class CaptionEncoder(nn.Module, PyTorchModelHubMixin):
    """Slot captions (B, 4) of word ids (0 = absent) → embeddings (B, 4, dim)."""

    def __init__(self, dim: int = 32, seed: int = 1234):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.dim = dim
        self.tables = nn.ParameterList(
            nn.Parameter(torch.randn(len(words) + 1, dim, generator=g), requires_grad=False)
            for words in SLOTS.values()
        )

    def forward(self, caps: torch.Tensor) -> torch.Tensor:
        return torch.stack([t[caps[:, i]] for i, t in enumerate(self.tables)], 1)


def make_unet(dim: int = 32, channels: tuple[int, ...] = (32, 64, 64)) -> UNet2DConditionModel:
    """The pixel-space conditional UNet (spec §6b), random initialisation."""
    return UNet2DConditionModel(
        sample_size=SIZE,
        in_channels=3,
        out_channels=3,
        layers_per_block=1,
        block_out_channels=channels,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=dim,
        attention_head_dim=8,
        norm_num_groups=8,
    )


class AttributeClassifier(nn.Module, PyTorchModelHubMixin):
    """Predicts (shape, view, hat) from an image in [−1, 1]; three logits heads of 3 classes."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.GELU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.GELU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * width * (SIZE // 4) ** 2, 128),
            nn.GELU(),
        )
        self.heads = nn.Linear(128, 9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, 3 attributes, 3 classes)."""
        return self.heads(self.body(x)).reshape(-1, 3, 3)
