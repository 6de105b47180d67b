"""Noise schedules of the absorbing forward process and the three corruption families.

Every position jumps to the absorbing token `[M]` with rate sigma(t) and never leaves it, so
each position is masked independently with probability 1 - exp(-sigma_bar(t)) (spec 1.2).

| symbol        | meaning                                              |
|---------------|------------------------------------------------------|
| t             | diffusion time in [0, 1]                             |
| sigma(t)      | jump rate to [M]                                      |
| sigma_bar(t)  | integrated rate, int_0^t sigma(s) ds                 |
| lambda        | masking probability 1 - exp(-sigma_bar(t))           |
| eps           | log-linear truncation: lambda(1) = 1 - eps           |
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

SCHEDULES = ("loglinear", "geometric")


@dataclass(frozen=True)
class LogLinearSchedule:
    """sigma_bar(t) = -log(1 - (1 - eps) t): the masking probability is (1 - eps) t."""

    eps: float = 1e-3

    def __post_init__(self) -> None:
        if not 0.0 < self.eps < 1.0:
            raise ValueError(f"log-linear eps must lie in (0, 1), got {self.eps}")

    def total(self, t: torch.Tensor) -> torch.Tensor:
        return -torch.log1p(-(1.0 - self.eps) * t)

    def rate(self, t: torch.Tensor) -> torch.Tensor:
        return (1.0 - self.eps) / (1.0 - (1.0 - self.eps) * t)


@dataclass(frozen=True)
class GeometricSchedule:
    """sigma_bar(t) = sigma_min^(1 - t) sigma_max^t (SEDD's geometric schedule)."""

    sigma_min: float = 1e-4
    sigma_max: float = 20.0

    def __post_init__(self) -> None:
        if not 0.0 < self.sigma_min < self.sigma_max:
            raise ValueError(
                f"geometric schedule needs 0 < sigma_min < sigma_max, got "
                f"{self.sigma_min}, {self.sigma_max}"
            )

    def total(self, t: torch.Tensor) -> torch.Tensor:
        return self.sigma_min ** (1.0 - t) * self.sigma_max**t

    def rate(self, t: torch.Tensor) -> torch.Tensor:
        return self.total(t) * math.log(self.sigma_max / self.sigma_min)


Schedule = LogLinearSchedule | GeometricSchedule


def make_schedule(name: str) -> Schedule:
    """The schedule called `name` with the official config's constants (spec 1.3)."""
    if name == "loglinear":
        return LogLinearSchedule()
    if name == "geometric":
        return GeometricSchedule()
    raise ValueError(f"unknown noise schedule {name!r}; choose one of {SCHEDULES}")


def mask_probability(schedule: Schedule, t: torch.Tensor) -> torch.Tensor:
    """lambda(t) = 1 - exp(-sigma_bar(t))."""
    return -torch.expm1(-schedule.total(t))


def log_expm1(sigma_bar: torch.Tensor) -> torch.Tensor:
    """log(exp(sigma_bar) - 1), accurate for small sigma_bar (the code's `esigm1`)."""
    return torch.where(
        sigma_bar < 0.5,
        torch.log(torch.expm1(sigma_bar.clamp_min(1e-30))),
        sigma_bar + torch.log1p(-torch.exp(-sigma_bar)),
    )


def mask_by_probability(
    x0: torch.Tensor, prob: torch.Tensor, u: torch.Tensor, mask_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask position i of row b when u[b, i] < prob[b]; returns (x_t, mask)."""
    mask = u < prob.reshape(-1, 1)
    return torch.where(mask, torch.full_like(x0, mask_id), x0), mask


def mask_exactly_k(
    x0: torch.Tensor, k: torch.Tensor, u: torch.Tensor, mask_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask the k[b] positions of row b with the smallest u: a uniform size-k subset."""
    rank = u.argsort(dim=1).argsort(dim=1)
    mask = rank < k.reshape(-1, 1)
    return torch.where(mask, torch.full_like(x0, mask_id), x0), mask
