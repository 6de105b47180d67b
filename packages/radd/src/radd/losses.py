"""The four training objectives of RADD as Monte-Carlo estimators of the NLL upper bound.

All estimators return one value per sequence in nats (spec 1.6). Drawing the noise is
separate from evaluating the loss, so the same draw can be scored by several estimators and
a distributed run can draw the global batch's noise and score only its own slice.

| symbol        | meaning                                                       |
|---------------|---------------------------------------------------------------|
| x_0, x_t      | clean and noisy sequences, length L                           |
| M(x_t)        | masked positions of x_t                                       |
| l_i           | -log q_theta(x_0^i | x_t), the denoising cross-entropy term  |
| s_theta       | concrete score; RADD: q_theta / (e^sigma_bar - 1) (Thm. 1)   |
| r_t           | 1 / (e^sigma_bar(t) - 1), the true score's time scalar       |
| lambda, k     | masking probability (lambda-DCE), number of masked tokens (AO) |
| eps_s         | lower end of the sampled time range, 1e-3                     |
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from radd.schedule import Schedule, log_expm1, mask_by_probability, mask_exactly_k

LOSSES = ("t_dse", "t_dce", "t_dce_code", "lambda_dce", "ao")
TIME_LOSSES = ("t_dse", "t_dce", "t_dce_code")
TIME_SAMPLERS = ("iid", "stratified")


@dataclass
class Noise:
    """One noise draw per sequence: `level` is t, lambda or k; `u` picks masked positions."""

    level: torch.Tensor
    u: torch.Tensor

    def __getitem__(self, index) -> Noise:
        return Noise(self.level[index], self.u[index])


def check_loss(name: str) -> str:
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {LOSSES}")
    return name


def draw_noise(
    loss: str,
    batch: int,
    length: int,
    generator: torch.Generator | None = None,
    time_sampler: str = "iid",
    sampling_eps: float = 1e-3,
) -> Noise:
    """Draw (t | lambda | k) per sequence and a uniform per position.

    `iid` draws the levels independently (as in the paper's runs). `stratified` is the
    official code's later variance reduction: for t one shared offset, t_j = (u + j/B) mod 1;
    for lambda one draw per stratum, lambda_j = (u_j + j) / B.
    """
    check_loss(loss)
    if time_sampler not in TIME_SAMPLERS:
        raise ValueError(f"unknown time sampler {time_sampler!r}; choose one of {TIME_SAMPLERS}")
    g = dict(generator=generator, dtype=torch.float64)
    if loss == "ao":
        level = torch.randint(1, length + 1, (batch,), generator=generator).double()
    elif loss == "lambda_dce":
        level = torch.rand(batch, **g)
        if time_sampler == "stratified":
            level = (level + torch.arange(batch)) / batch
        level = level.clamp_min(1e-12)  # lambda = 0 would give 0 / 0 for an unmasked row
    else:
        if time_sampler == "stratified":
            level = (torch.rand(1, **g) + torch.arange(batch) / batch) % 1.0
        else:
            level = torch.rand(batch, **g)
        level = (1.0 - sampling_eps) * level + sampling_eps
    return Noise(level, torch.rand(batch, length, **g))


def _unwrap(model):
    return getattr(model, "module", model)


def model_outputs(model, x_t: torch.Tensor, sigma_bar: torch.Tensor | None):
    """(log q, log s) at every position: q normalised over real tokens, s the score."""
    if _unwrap(model).time_conditioned:
        if sigma_bar is None:
            raise ValueError("the AO loss needs a time-free (RADD) model")
        log_s = model(x_t, sigma_bar.float())
        return log_s.log_softmax(dim=-1), log_s
    log_q = model(x_t)
    if sigma_bar is None:
        return log_q, None
    return log_q, log_q - log_expm1(sigma_bar.float())[:, None, None]


def corrupt(x0: torch.Tensor, noise: Noise, loss: str, schedule: Schedule, mask_id: int):
    """x_t and the mask for a noise draw; sigma_bar per row (None for AO)."""
    if loss == "ao":
        x_t, mask = mask_exactly_k(x0, noise.level.long(), noise.u, mask_id)
        return x_t, mask, None
    if loss == "lambda_dce":
        lam = noise.level
        x_t, mask = mask_by_probability(x0, lam, noise.u, mask_id)
        # lambda = 1 - exp(-sigma_bar); only a time-conditioned model uses sigma_bar.
        return x_t, mask, -torch.log1p(-lam.clamp_max(1 - 1e-12))
    sigma_bar = schedule.total(noise.level)
    x_t, mask = mask_by_probability(x0, -torch.expm1(-sigma_bar), noise.u, mask_id)
    return x_t, mask, sigma_bar


def per_sequence_loss(
    model,
    x0: torch.Tensor,
    noise: Noise,
    loss: str,
    schedule: Schedule,
    sampling_eps: float = 1e-3,
) -> torch.Tensor:
    """The chosen estimator of the NLL bound for each sequence of x0, shape (B,), nats."""
    check_loss(loss)
    mask_id = _unwrap(model).mask_id
    L = x0.shape[1]
    x_t, mask, sigma_bar = corrupt(x0, noise, loss, schedule, mask_id)
    log_q, log_s = model_outputs(model, x_t, sigma_bar)
    ell = -log_q.gather(-1, x0[..., None]).squeeze(-1)
    ell_masked = torch.where(mask, ell.double(), 0.0).sum(dim=1)

    if loss == "lambda_dce":
        # Eq. (lambda-DCE): (1 / lambda) sum_{i in M} l_i.
        return ell_masked / noise.level
    if loss == "ao":
        # AO form: (L / k) sum_{i in M} l_i with |M| = k.
        return ell_masked * L / noise.level

    # The t-indexed losses estimate (1 - eps_s) * E_t[...] for t ~ U(eps_s, 1).
    t = noise.level
    sigma = schedule.rate(t)
    log_r = -log_expm1(sigma_bar)
    weight = (1.0 - sampling_eps) * sigma
    if loss == "t_dce":
        # t-DCE: sigma(t) r_t sum_{i in M} l_i.
        return weight * log_r.exp() * ell_masked
    if loss == "t_dce_code":
        # The official code's t_DCE: adds a zero-mean log(e^sigma_bar - 1) per masked token.
        extra = -log_r * mask.sum(dim=1)
        return weight * log_r.exp() * (ell_masked + extra)

    # DSE (score entropy): sum_{v != M} s_v - r log s_{x0} + K(r), K(a) = a (log a - 1).
    r = log_r.exp()[:, None]
    positive = log_s.double().exp().sum(dim=-1)
    negative = -r * log_s.gather(-1, x0[..., None]).squeeze(-1).double()
    constant = r * (log_r[:, None] - 1.0)
    return weight * torch.where(mask, positive + negative + constant, 0.0).sum(dim=1)


def training_loss(model, x0, noise, loss, schedule, sampling_eps=1e-3) -> torch.Tensor:
    """Mean over the batch of the per-sequence bound (nats per sequence), float32."""
    return per_sequence_loss(model, x0, noise, loss, schedule, sampling_eps).mean().float()


@torch.no_grad()
def exact_ao(model, x0: torch.Tensor, batch_size: int = 1024) -> float:
    """The AO expectation by enumerating every non-empty masked subset of one sequence.

    sum_k (1/k) (1 / C(L, k)) sum_{|M| = k} sum_{i in M} l_i; feasible for L up to ~14.
    """
    L = x0.shape[-1]
    mask_id = _unwrap(model).mask_id
    codes = torch.arange(1, 2**L)
    total = 0.0
    for start in range(0, codes.numel(), batch_size):
        chunk = codes[start : start + batch_size]
        mask = ((chunk[:, None] >> torch.arange(L)) & 1).bool()
        x_t = torch.where(mask, mask_id, x0.expand(len(chunk), L))
        log_q = model(x_t)
        ell = -log_q.gather(-1, x0.expand(len(chunk), L)[..., None]).squeeze(-1).double()
        k = mask.sum(dim=1).double()
        binom = torch.tensor([math.comb(L, int(j)) for j in k], dtype=torch.float64)
        total += (torch.where(mask, ell, 0.0).sum(dim=1) / (k * binom)).sum().item()
    return total


@torch.no_grad()
def fixed_order_nll(model, x0: torch.Tensor, order: torch.Tensor | None = None) -> torch.Tensor:
    """-log of the AO-ARM likelihood of x0 under one generation order (L network calls).

    x0: (B, L); order: a permutation of range(L), left to right when None.
    """
    B, L = x0.shape
    order = torch.arange(L) if order is None else order
    mask_id = _unwrap(model).mask_id
    total = torch.zeros(B, dtype=torch.float64)
    for step in range(L):
        x_t = x0.clone()
        x_t[:, order[step:]] = mask_id
        log_q = model(x_t)
        pos = order[step]
        total -= log_q[:, pos].gather(-1, x0[:, pos, None]).squeeze(-1).double()
    return total
