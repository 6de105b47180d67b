"""Score networks: a small U-Net for 8×8, an NCSN-style RefineNet for 28×28, and an MLP.

Every network maps (input image, time t) to an image of the same shape. Time is fed either as
sinusoidal features of the continuous t (`time_embedding="sinusoidal"`) or, as published, as a
learned embedding of the integer level k = round(t N / T) (`"level"`); the NCSN network uses it
through conditional instance normalisation (Song & Ermon 2019), as the released code does.
All networks save and load with `save_pretrained` / `from_pretrained`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

ARCHS = ("unet", "ncsn", "mlp")
TIME_EMBEDDINGS = ("sinusoidal", "level")


class TimeEmbedding(nn.Module):
    """t ∈ (0, T] → a `dim`-vector, from sinusoidal features or a table indexed by the level k."""

    def __init__(self, dim: int, kind: str, n_levels: int, horizon: float = 1.0):
        super().__init__()
        if kind not in TIME_EMBEDDINGS:
            raise ValueError(f"time_embedding must be one of {TIME_EMBEDDINGS}, got {kind!r}")
        self.kind, self.n_levels, self.horizon, self.dim = kind, n_levels, horizon, dim
        if kind == "level":
            self.table = nn.Embedding(n_levels + 1, dim)
        else:
            self.register_buffer(
                "freqs", torch.exp(torch.linspace(0, math.log(1000.0), dim // 2)), persistent=False
            )
            self.proj = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        if self.kind == "level":
            k = torch.round(t / self.horizon * self.n_levels).long().clamp(0, self.n_levels)
            return self.table(k)
        angles = (t / self.horizon)[:, None].float() * self.freqs[None]
        return self.proj(torch.cat([angles.sin(), angles.cos()], dim=1))


def _groups(ch: int) -> int:
    return min(8, ch)


class ResBlock(nn.Module):
    """GroupNorm–SiLU–conv twice, with the time embedding added as a per-channel bias."""

    def __init__(self, cin: int, cout: int, emb_dim: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(_groups(cin), cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, cout)
        self.norm2 = nn.GroupNorm(_groups(cout), cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x))) + self.emb(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class UNet(nn.Module, PyTorchModelHubMixin):
    """Two-resolution conv U-Net (8×8 → 4×4 for the digits), GroupNorm and SiLU."""

    def __init__(
        self,
        channels: int = 1,
        widths: tuple[int, int] = (32, 64),
        time_embedding: str = "sinusoidal",
        n_levels: int = 1000,
        horizon: float = 1.0,
    ):
        super().__init__()
        c1, c2 = widths
        emb = 4 * c1
        self.time = TimeEmbedding(emb, time_embedding, n_levels, horizon)
        self.inp = nn.Conv2d(channels, c1, 3, padding=1)
        self.down1 = ResBlock(c1, c1, emb)
        self.pool = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
        self.down2 = ResBlock(c2, c2, emb)
        self.mid = ResBlock(c2, c2, emb)
        self.up2 = ResBlock(2 * c2, c2, emb)
        self.up1 = ResBlock(c1 + c2, c1, emb)
        self.out_norm = nn.GroupNorm(_groups(c1), c1)
        self.out = nn.Conv2d(c1, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time(t)
        h1 = self.down1(self.inp(x), emb)
        h2 = self.down2(self.pool(h1), emb)
        h = self.up2(torch.cat([self.mid(h2, emb), h2], 1), emb)
        h = F.interpolate(h, size=h1.shape[-2:], mode="nearest")
        h = self.up1(torch.cat([h, h1], 1), emb)
        return self.out(F.silu(self.out_norm(h)))


class MLP(nn.Module, PyTorchModelHubMixin):
    """Fully connected score network (the spec's fastest digits option): D → W → W → D."""

    def __init__(
        self,
        channels: int = 1,
        size: int = 8,
        width: int = 256,
        time_embedding: str = "sinusoidal",
        n_levels: int = 1000,
        horizon: float = 1.0,
    ):
        super().__init__()
        d = channels * size * size
        self.time = TimeEmbedding(width, time_embedding, n_levels, horizon)
        self.inp, self.hidden, self.out = nn.Linear(d, width), nn.Linear(width, width), None
        self.out = nn.Linear(width, d)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time(t)
        h = F.silu(self.inp(x.flatten(1)) + emb)
        h = F.silu(self.hidden(h) + emb)
        return self.out(h).view_as(x)


class CondInstanceNormPP(nn.Module):
    """Conditional instance norm++ (Song & Ermon 2019): per-level γ, β, α, with mean correction."""

    def __init__(self, ch: int, emb_dim: int):
        super().__init__()
        self.norm = nn.InstanceNorm2d(ch, affine=False)
        self.params = nn.Linear(emb_dim, 3 * ch)
        nn.init.normal_(self.params.weight, std=0.02)
        with torch.no_grad():
            self.params.bias.copy_(torch.cat([torch.ones(ch), torch.zeros(ch), torch.ones(ch)]))

    def forward(self, x, emb):
        gamma, beta, alpha = self.params(emb)[:, :, None, None].chunk(3, dim=1)
        means = x.mean((2, 3), keepdim=True)
        m, v = means.mean(1, keepdim=True), means.var(1, keepdim=True, unbiased=False)
        means_hat = (means - m) / torch.sqrt(v + 1e-5)
        return gamma * (self.norm(x) + alpha * means_hat) + beta


class CondResBlock(nn.Module):
    """Pre-activation residual block with conditional norms, optional stride-2 or dilation."""

    def __init__(self, cin: int, cout: int, emb: int, down: bool = False, dilation: int = 1):
        super().__init__()
        stride = 2 if down else 1
        self.n1, self.n2 = CondInstanceNormPP(cin, emb), CondInstanceNormPP(cout, emb)
        self.c1 = nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=dilation, dilation=dilation)
        self.skip = nn.Conv2d(cin, cout, 1, stride) if (cin != cout or down) else nn.Identity()

    def forward(self, x, emb):
        h = self.c1(F.elu(self.n1(x, emb)))
        h = self.c2(F.elu(self.n2(h, emb)))
        return h + self.skip(x)


class RefineBlock(nn.Module):
    """RefineNet fusion: adapt each input, upsample to the finest size, sum, residual-pool."""

    def __init__(self, cins: tuple[int, ...], cout: int, emb: int):
        super().__init__()
        self.adapt = nn.ModuleList(CondResBlock(c, cout, emb) for c in cins)
        self.pool_norm = CondInstanceNormPP(cout, emb)
        self.pool_conv = nn.Conv2d(cout, cout, 3, padding=1)
        self.out = CondResBlock(cout, cout, emb)

    def forward(self, xs, emb):
        size = max((x.shape[-2:] for x in xs), key=lambda s: s[0])
        h = sum(
            F.interpolate(a(x, emb), size=size, mode="bilinear", align_corners=False)
            for a, x in zip(self.adapt, xs, strict=True)
        )
        pooled = F.avg_pool2d(F.elu(self.pool_norm(h, emb)), 5, stride=1, padding=2)
        return self.out(h + self.pool_conv(pooled), emb)


class NCSN(nn.Module, PyTorchModelHubMixin):
    """Compact NCSN-deeper-style RefineNet: five residual stages, RefineNet decoder (§2.1).

    Stage widths ngf, 2ngf, 2ngf, 4ngf (dilation 2), 4ngf (dilation 4); stages 2 and 3 halve the
    resolution (28 → 14 → 7). Conditioning on the noise level goes through conditional
    instance norm++ in every block.
    """

    def __init__(
        self,
        channels: int = 1,
        ngf: int = 128,
        time_embedding: str = "level",
        n_levels: int = 1000,
        horizon: float = 1.0,
    ):
        super().__init__()
        emb = 4 * ngf if time_embedding == "sinusoidal" else ngf
        self.time = TimeEmbedding(emb, time_embedding, n_levels, horizon)
        w = (ngf, 2 * ngf, 2 * ngf, 4 * ngf, 4 * ngf)
        self.begin = nn.Conv2d(channels, ngf, 3, padding=1)
        spec = ((ngf, w[0], False, 1), (w[0], w[1], True, 1), (w[1], w[2], True, 1))
        spec += ((w[2], w[3], False, 2), (w[3], w[4], False, 4))
        self.stages = nn.ModuleList(
            nn.ModuleList([CondResBlock(a, b, emb, down, d), CondResBlock(b, b, emb, dilation=d)])
            for a, b, down, d in spec
        )
        self.refine = nn.ModuleList(
            [
                RefineBlock((w[4],), w[3], emb),
                RefineBlock((w[3], w[3]), w[2], emb),
                RefineBlock((w[2], w[2]), w[1], emb),
                RefineBlock((w[1], w[1]), w[0], emb),
                RefineBlock((w[0], w[0]), ngf, emb),
            ]
        )
        self.end_norm = CondInstanceNormPP(ngf, emb)
        self.end = nn.Conv2d(ngf, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time(t)
        h = self.begin(x)
        feats = []
        for first, second in self.stages:
            h = second(first(h, emb), emb)
            feats.append(h)
        h = self.refine[0]([feats[4]], emb)
        for i, skip in enumerate(reversed(feats[:4]), start=1):
            h = self.refine[i]([skip, h], emb)
        return self.end(F.elu(self.end_norm(h, emb)))


def build_network(arch: str, channels: int, size: int, width: int, time_embedding: str, N: int):
    """The score network named by `arch` (`width` is the U-Net's first width / NCSN's ngf)."""
    if arch == "unet":
        return UNet(channels, (width, 2 * width), time_embedding, N)
    if arch == "ncsn":
        return NCSN(channels, width, time_embedding, N)
    if arch == "mlp":
        return MLP(channels, size, width, time_embedding, N)
    raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
