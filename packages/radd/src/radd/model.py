"""The RADD denoiser: a bidirectional transformer over token ids with no time input.

The network maps a noisy sequence x_t to q_theta(. | x_t), a distribution over the V real
tokens at every position (spec 1.5). The same backbone with `time_conditioned=True` is the
SEDD-style baseline: adaLN modulation from sigma_bar and an unnormalised log-score output
(SEDD's "scale by sigma": subtract log(e^sigma_bar - 1) and log(V - 1)).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from radd.schedule import log_expm1

# Sizes of spec 3.1 (small, medium) and the CPU sizes of the embedded reproduction.
MODEL_SIZES: dict[str, dict[str, int | float]] = {
    "small": {"hidden": 768, "n_blocks": 12, "n_heads": 12, "dropout": 0.02},
    "medium": {"hidden": 1024, "n_blocks": 24, "n_heads": 16, "dropout": 0.02},
    "base": {"hidden": 128, "n_blocks": 4, "n_heads": 4, "dropout": 0.0},
    "cpu": {"hidden": 64, "n_blocks": 2, "n_heads": 4, "dropout": 0.0},
    "tiny": {"hidden": 32, "n_blocks": 2, "n_heads": 2, "dropout": 0.0},
}


class LayerNorm(nn.Module):
    """LayerNorm in fp32 without affine, then x * weight + bias, both initialised to ones."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.ones(dim))
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x.float(), [self.dim]).to(x.dtype)
        return y * self.weight + self.bias


def rotary_tables(length: int, head_dim: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """cos and sin tables of rotary embeddings with base 10000, shape (L, head_dim)."""
    inv_freq = 1.0 / 10000 ** (torch.arange(0, head_dim, 2, device=device).float() / head_dim)
    angles = torch.outer(torch.arange(length, device=device).float(), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class Block(nn.Module):
    """Pre-LN block: RoPE self-attention then a tanh-GELU MLP, optional adaLN modulation."""

    def __init__(self, hidden: int, n_heads: int, mlp_ratio: int, dropout: float, cond_dim: int):
        super().__init__()
        self.n_heads = n_heads
        self.norm1 = LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden, bias=False)
        self.attn_out = nn.Linear(hidden, hidden, bias=False)
        self.norm2 = LayerNorm(hidden)
        self.mlp = nn.Sequential(
            nn.Linear(hidden, mlp_ratio * hidden),
            nn.GELU(approximate="tanh"),
            nn.Linear(mlp_ratio * hidden, hidden),
        )
        self.dropout = nn.Dropout(dropout)
        self.ada = None
        if cond_dim:
            self.ada = nn.Linear(cond_dim, 6 * hidden)
            nn.init.zeros_(self.ada.weight)
            nn.init.zeros_(self.ada.bias)

    def forward(self, x: torch.Tensor, rope: tuple, cond: torch.Tensor | None) -> torch.Tensor:
        B, L, D = x.shape
        if self.ada is not None:
            mods = self.ada(cond)[:, None].chunk(6, dim=-1)
            shift1, scale1, gate1, shift2, scale2, gate2 = mods
        else:
            shift1 = scale1 = shift2 = scale2 = 0.0
            gate1 = gate2 = 1.0

        h = self.norm1(x) * (1 + scale1) + shift1
        q, k, v = self.qkv(h).view(B, L, 3, self.n_heads, D // self.n_heads).unbind(dim=2)
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))
        q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        attn = F.scaled_dot_product_attention(q, k, v)
        attn = attn.transpose(1, 2).reshape(B, L, D)
        x = x + gate1 * self.dropout(self.attn_out(attn))

        h = self.norm2(x) * (1 + scale2) + shift2
        return x + gate2 * self.dropout(self.mlp(h))


class TimeEmbedding(nn.Module):
    """Sinusoidal features of sigma_bar followed by a two-layer MLP (SEDD's conditioning)."""

    def __init__(self, cond_dim: int, n_freq: int = 256) -> None:
        super().__init__()
        self.n_freq = n_freq
        self.mlp = nn.Sequential(
            nn.Linear(n_freq, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim)
        )

    def forward(self, sigma_bar: torch.Tensor) -> torch.Tensor:
        half = self.n_freq // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, device=sigma_bar.device) / half)
        args = sigma_bar.float()[:, None] * freqs[None]
        return self.mlp(torch.cat([args.cos(), args.sin()], dim=-1))


class RADDModel(nn.Module, PyTorchModelHubMixin):
    """Time-free RADD denoiser (or, with `time_conditioned`, the SEDD-style score network).

    Token ids 0..vocab_size-1 are real tokens and `vocab_size` is the mask [M]. The output
    layer has vocab_size + 1 channels as in the paper's code; the mask channel is never used.
    """

    def __init__(
        self,
        vocab_size: int = 257,
        length: int = 128,
        hidden: int = 64,
        n_blocks: int = 2,
        n_heads: int = 4,
        mlp_ratio: int = 4,
        dropout: float = 0.0,
        time_conditioned: bool = False,
        cond_dim: int = 128,
    ) -> None:
        super().__init__()
        if hidden % n_heads or (hidden // n_heads) % 2:
            raise ValueError(f"hidden={hidden} must split into n_heads={n_heads} even-sized heads")
        self.vocab_size = vocab_size
        self.mask_id = vocab_size
        self.length = length
        self.time_conditioned = time_conditioned
        self.head_dim = hidden // n_heads
        cond = cond_dim if time_conditioned else 0

        self.embed = nn.Parameter(torch.empty(vocab_size + 1, hidden))
        nn.init.kaiming_uniform_(self.embed, a=math.sqrt(5))
        self.time_embed = TimeEmbedding(cond_dim) if time_conditioned else None
        self.blocks = nn.ModuleList(
            Block(hidden, n_heads, mlp_ratio, dropout, cond) for _ in range(n_blocks)
        )
        self.norm_out = LayerNorm(hidden)
        self.out = nn.Linear(hidden, vocab_size + 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.ada_out = None
        if time_conditioned:
            self.ada_out = nn.Linear(cond_dim, 2 * hidden)
            nn.init.zeros_(self.ada_out.weight)
            nn.init.zeros_(self.ada_out.bias)

    def logits(self, x: torch.Tensor, sigma_bar: torch.Tensor | None = None) -> torch.Tensor:
        """Raw output logits, shape (B, L, vocab_size + 1)."""
        if x.shape[1] > self.length:
            raise ValueError(
                f"sequence length {x.shape[1]} exceeds the model's length {self.length}; "
                "use shorter sequences or a model built with a larger --length"
            )
        if self.time_conditioned and sigma_bar is None:
            raise ValueError("a time-conditioned model needs sigma_bar")
        cond = self.time_embed(sigma_bar) if self.time_embed is not None else None
        rope = rotary_tables(x.shape[1], self.head_dim, x.device)
        h = self.embed[x]
        for block in self.blocks:
            h = block(h, rope, cond)
        h = self.norm_out(h)
        if self.ada_out is not None:
            shift, scale = self.ada_out(cond)[:, None].chunk(2, dim=-1)
            h = h * (1 + scale) + shift
        return self.out(h)

    def forward(self, x: torch.Tensor, sigma_bar: torch.Tensor | None = None) -> torch.Tensor:
        """RADD: log q_theta(v | x_t) over the real tokens, shape (B, L, vocab_size).

        Time-conditioned: the log concrete score log s_theta(x_t, t)_{i,v} for real v.
        """
        logits = self.logits(x, sigma_bar)[..., : self.vocab_size].float()
        if not self.time_conditioned:
            return logits.log_softmax(dim=-1)
        return logits - log_expm1(sigma_bar)[:, None, None] - math.log(self.vocab_size - 1)


def build_model(size: str, vocab_size: int, length: int, time_conditioned: bool = False):
    """A RADDModel of one of the named sizes in MODEL_SIZES."""
    if size not in MODEL_SIZES:
        raise ValueError(f"unknown model size {size!r}; choose one of {tuple(MODEL_SIZES)}")
    return RADDModel(
        vocab_size=vocab_size, length=length, time_conditioned=time_conditioned, **MODEL_SIZES[size]
    )
