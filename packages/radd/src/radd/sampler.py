"""Reverse-process samplers for absorbing diffusion with RADD's caching strategy (spec 2).

At step k every still-masked position is unmasked independently with probability rho_k and,
if unmasked, takes a token drawn from q_theta(. | x_{t_k}). The unmasking decisions never
look at the network, so a sequence's network output stays valid until one of its tokens
changes: the cached sampler evaluates the network only for sequences that changed since
their last evaluation and that unmask something in the current step.

| symbol      | meaning                                                       |
|-------------|---------------------------------------------------------------|
| n           | number of sampling steps                                      |
| t_k         | time grid linspace(1, eps, n + 1)                             |
| rho_k       | probability that a masked position is unmasked at step k      |
| Delta_k     | probability that a given position is unmasked exactly at step k |
| L           | number of free (not fixed) positions                          |
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from radd.schedule import Schedule

METHODS = ("tweedie", "euler")


def unmask_rates(schedule: Schedule, steps: int, method: str = "tweedie", eps: float = 1e-5):
    """rho_k for k = 0..n-1 (float64); the last step unmasks every remaining position."""
    if method not in METHODS:
        raise ValueError(f"unknown sampling method {method!r}; choose one of {METHODS}")
    if steps < 1:
        raise ValueError(f"the number of sampling steps must be >= 1, got {steps}")
    t = torch.linspace(1.0, eps, steps + 1, dtype=torch.float64)
    lam = -torch.expm1(-schedule.total(t))
    if method == "tweedie":
        # Tweedie tau-leaping: P(unmasked at t_{k+1} | masked at t_k) = (lam_k - lam_{k+1}) / lam_k
        rho = (lam[:-1] - lam[1:]) / lam[:-1]
    else:
        # Euler: rho_k = dt sigma(t_k) e^{-sigma_bar(t_k)} / (1 - e^{-sigma_bar(t_k)}).
        sigma_bar = schedule.total(t[:-1])
        rho = (t[:-1] - t[1:]) * schedule.rate(t[:-1]) * torch.exp(-sigma_bar) / lam[:-1]
    rho = rho.clamp(0.0, 1.0)
    rho[-1] = 1.0
    return rho


def expected_nfe(
    steps: int, length: int, schedule: Schedule | None = None, method: str = "tweedie"
) -> float:
    """E-NFE of the cached sampler: sum_k 1 - (1 - Delta_k)^L.

    Without a schedule this is the closed form n (1 - (1 - 1/n)^L) of the log-linear
    schedule on a uniform grid; with one it is exact for that schedule's grid.
    """
    if schedule is None:
        return steps * (1.0 - (1.0 - 1.0 / steps) ** length)
    rho = unmask_rates(schedule, steps, method)
    survive = torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - rho, 0)[:-1]])
    delta = survive * rho
    return float((1.0 - (1.0 - delta) ** length).sum())


@dataclass
class SampleResult:
    tokens: torch.Tensor  # (B, L)
    nfe: torch.Tensor  # network evaluations per sequence, (B,)
    calls: int  # batched network calls
    seconds: float


def _init_state(model, n: int, length: int, fixed: torch.Tensor | None) -> torch.Tensor:
    x = torch.full((n, length), model.mask_id, dtype=torch.long)
    if fixed is not None:
        fixed = fixed.expand(n, length)
        if (fixed >= model.vocab_size).any():
            raise ValueError("fixed tokens must be real tokens (ids below the vocabulary size)")
        x = torch.where(fixed >= 0, fixed, x)
    return x


@torch.no_grad()
def sample(
    model,
    n: int,
    length: int,
    steps: int,
    schedule: Schedule,
    method: str = "tweedie",
    cache: bool = True,
    fixed: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> SampleResult:
    """Draw n sequences; `fixed` (n or 1, length) holds conditioning tokens, -1 where free.

    Random draws do not depend on `cache`, so cached and uncached runs with the same
    generator state give identical sequences.
    """
    if length > model.length:
        raise ValueError(f"length {length} exceeds the model's length {model.length}")
    rho = unmask_rates(schedule, steps, method)
    x = _init_state(model, n, length, fixed)
    probs = torch.zeros(n, length, model.vocab_size, dtype=torch.float64)
    stale = torch.ones(n, dtype=torch.bool)
    nfe = torch.zeros(n, dtype=torch.long)
    calls = 0
    start = time.perf_counter()

    for k in range(steps):
        masked = x == model.mask_id
        u = torch.rand(n, length, generator=generator, dtype=torch.float64)
        unmask = masked & (u < rho[k])
        rows = unmask.any(dim=1)

        # The network runs only where its cached output is out of date and needed now.
        need = rows & stale if cache else torch.ones(n, dtype=torch.bool)
        if need.any():
            probs[need] = model(x[need]).double().exp()
            nfe += need
            calls += 1
            stale &= ~need

        # Exact categorical draw by Gumbel-max in float64: argmax_v q_v / Exp(1).
        if rows.any():
            p = probs[unmask]
            e = -torch.log(torch.rand(p.shape, generator=generator, dtype=torch.float64))
            x[unmask] = (p / e).argmax(dim=-1)
            stale |= rows

    return SampleResult(x, nfe, calls, time.perf_counter() - start)


@torch.no_grad()
def sample_ordered(
    model,
    n: int,
    length: int,
    order: torch.Tensor | None = None,
    fixed: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> SampleResult:
    """AO-ARM sampling: unmask one position per network call following `order`."""
    x = _init_state(model, n, length, fixed)
    order = torch.randperm(length, generator=generator) if order is None else order
    start = time.perf_counter()
    calls = 0
    for pos in order.tolist():
        free = x[:, pos] == model.mask_id
        if not free.any():
            continue
        p = model(x[free]).double().exp()[:, pos]
        e = -torch.log(torch.rand(p.shape, generator=generator, dtype=torch.float64))
        x[free, pos] = (p / e).argmax(dim=-1)
        calls += 1
    nfe = torch.full((n,), calls, dtype=torch.long)
    return SampleResult(x, nfe, calls, time.perf_counter() - start)
