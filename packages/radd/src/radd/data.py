"""Embedded corpora: byte-level CPython documentation text and a synthetic Markov chain.

The Markov chain has an exact likelihood, exact entropy and exact conditionals
p(x^i | visible tokens) (forward-backward over masked runs), which make it an oracle
denoiser for testing estimators and samplers and a hard lower bound for trained models.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from torch import nn

BYTE_VOCAB = 257  # ids 0..255 are UTF-8 bytes, 256 is the end-of-document token
BYTE_EOS = 256


class ByteTokenizer:
    """UTF-8 bytes as tokens; id 256 separates documents; the mask [M] is id 257."""

    vocab_size = BYTE_VOCAB
    eos_id = BYTE_EOS
    mask_id = BYTE_VOCAB

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids) -> str:
        data = bytes(int(i) for i in ids if 0 <= int(i) < 256)
        return data.decode("utf-8", errors="replace")


def pack(ids: np.ndarray | list[int], length: int) -> torch.Tensor:
    """Cut a token stream into rows of `length`, dropping the remainder (official packing)."""
    ids = torch.as_tensor(np.asarray(ids), dtype=torch.long)
    n = ids.numel() // length
    if n == 0:
        raise ValueError(
            f"the corpus has {ids.numel()} tokens, fewer than one sequence of length {length}; "
            "use a larger corpus or a shorter --length"
        )
    return ids[: n * length].view(n, length)


def pydoc_corpus(length: int, valid_fraction: float = 0.1) -> dict:
    """CPython's pydoc topics as bytes, packed; the last `valid_fraction` is validation.

    The split is contiguous, so validation text is unseen during training. The text varies
    with the Python version, so the SHA-256 of the bytes is returned for the result record.
    """
    from reprozoo.data import pydoc_text

    raw = pydoc_text().encode("utf-8")
    if not raw:
        raise ValueError("the pydoc corpus is empty; this Python lacks pydoc_data.topics")
    cut = int(len(raw) * (1.0 - valid_fraction))
    ids = np.frombuffer(raw, dtype=np.uint8).astype(np.int64)
    return {
        "train": pack(ids[:cut], length),
        "valid": pack(ids[cut:], length),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "n_bytes": len(raw),
    }


class MarkovChain:
    """First-order chain over V symbols: Dirichlet(alpha) rows, stationary start."""

    def __init__(self, vocab_size: int = 8, alpha: float = 0.3, seed: int = 0) -> None:
        if vocab_size < 2:
            raise ValueError(f"a Markov chain needs at least 2 symbols, got {vocab_size}")
        rng = np.random.default_rng(seed)
        P = rng.dirichlet(np.full(vocab_size, alpha), size=vocab_size)
        P = np.clip(P, 1e-6, None)
        P /= P.sum(axis=1, keepdims=True)
        evals, evecs = np.linalg.eig(P.T)
        pi = np.real(evecs[:, np.argmin(np.abs(evals - 1.0))])
        self.P = torch.tensor(P, dtype=torch.float64)
        self.pi = torch.tensor(pi / pi.sum(), dtype=torch.float64)
        self.vocab_size = vocab_size

    def sample(self, n: int, length: int, generator: torch.Generator | None = None):
        x = torch.empty(n, length, dtype=torch.long)
        x[:, 0] = torch.multinomial(self.pi.expand(n, -1), 1, generator=generator)[:, 0]
        for i in range(1, length):
            x[:, i] = torch.multinomial(self.P[x[:, i - 1]], 1, generator=generator)[:, 0]
        return x

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log p(x) per sequence, nats."""
        lp = self.pi[x[:, 0]].log()
        return lp + self.P[x[:, :-1], x[:, 1:]].log().sum(dim=1)

    def entropy(self, length: int) -> float:
        """H(x^1..x^L) = H(pi) + (L - 1) sum_a pi_a H(P_a), nats per sequence."""
        h_pi = -(self.pi * self.pi.log()).sum()
        h_rows = -(self.P * self.P.log()).sum(dim=1)
        return float(h_pi + (length - 1) * (self.pi * h_rows).sum())

    def conditionals(self, x: torch.Tensor, mask_id: int) -> torch.Tensor:
        """p(x^i = v | unmasked tokens of x) for every position, shape (B, L, V), float64."""
        B, L = x.shape
        V = self.vocab_size
        masked = x == mask_id
        evidence = torch.where(
            masked[..., None],
            torch.ones(B, L, V, dtype=torch.float64),
            nn.functional.one_hot(x.clamp_max(V - 1), V).double(),
        )
        alpha = torch.empty(B, L, V, dtype=torch.float64)
        beta = torch.ones(B, L, V, dtype=torch.float64)
        a = self.pi * evidence[:, 0]
        alpha[:, 0] = a / a.sum(dim=1, keepdim=True)
        for i in range(1, L):
            a = (alpha[:, i - 1] @ self.P) * evidence[:, i]
            alpha[:, i] = a / a.sum(dim=1, keepdim=True)
        for i in range(L - 2, -1, -1):
            b = (evidence[:, i + 1] * beta[:, i + 1]) @ self.P.T
            beta[:, i] = b / b.sum(dim=1, keepdim=True)
        post = alpha * beta
        return post / post.sum(dim=-1, keepdim=True)


class OracleDenoiser(nn.Module):
    """The exact q(x^i | x^UM) of a Markov chain, usable wherever a RADD model is."""

    time_conditioned = False

    def __init__(self, chain: MarkovChain) -> None:
        super().__init__()
        self.chain = chain
        self.vocab_size = chain.vocab_size
        self.mask_id = chain.vocab_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.chain.conditionals(x, self.mask_id).clamp_min(1e-300).log()
