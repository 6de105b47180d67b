"""Preference losses: DPO, the two forms of cDPO, RPO, TDPO and SFT (spec 1.7 and 2).

Every loss takes per-token tensors laid out as the shifted ``prompt + response`` batch of shape
``(B, J)``: entry ``j`` belongs to the token at position ``j + 1``. Masks are 1 on response
tokens (EOS included) and 0 on prompt and pad positions; weights are constants.

| symbol | meaning |
|---|---|
| ``pi_w, pi_l`` | log πθ of each chosen / rejected token under the policy |
| ``ref_w, ref_l`` | the same under the frozen reference π_ref |
| ``m_w, m_l`` | response masks |
| ``w_w, w_l`` | per-token cDPO weights (``w^l_t = 1 − s^l_t``; chosen weights 1 by default) |
| ``Δ_t`` | per-token log ratio log πθ − log π_ref |
| ``β`` | DPO inverse temperature |

Here "cDPO" is critical-token DPO (Lin et al., 2024), not the label-smoothed "conservative DPO"
that TRL and OpenRLHF call cDPO.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def token_logps(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """log p(ids[:, j+1] | ids[:, :j+1]) for every j: shape ``(B, L-1)``."""
    logp = logits[:, :-1].float().log_softmax(-1)
    return logp.gather(-1, ids[:, 1:, None]).squeeze(-1)


def dpo_loss(pi_w, ref_w, pi_l, ref_l, m_w, m_l, beta: float) -> torch.Tensor:
    """Rafailov et al.: −log σ(β(Δ^w − Δ^l)) with sequence sums Δ = Σ_t Δ_t, mean over pairs."""
    delta_w = ((pi_w - ref_w) * m_w).sum(-1)
    delta_l = ((pi_l - ref_l) * m_l).sum(-1)
    return -F.logsigmoid(beta * (delta_w - delta_l)).mean()


def cdpo_seq_loss(pi_w, ref_w, pi_l, ref_l, m_w, m_l, w_w, w_l, beta: float) -> torch.Tensor:
    """Paper form (spec 1.7): −log σ(β Σ_t w^w_t Δ^w_t − β Σ_t w^l_t Δ^l_t).

    With every weight 1 this is exactly :func:`dpo_loss`.
    """
    delta_w = ((pi_w - ref_w) * m_w * w_w).sum(-1)
    delta_l = ((pi_l - ref_l) * m_l * w_l).sum(-1)
    return -F.logsigmoid(beta * (delta_w - delta_l)).mean()


def cdpo_code_loss(pi_w, ref_w, pi_l, ref_l, m_w, m_l, w_w, w_l, beta: float) -> torch.Tensor:
    """The released code's form: mean over every (pair, position) of
    −log σ(β(w^w_j Δ^w_j − w^l_j Δ^l_j)).

    Chosen and rejected are paired by position ``j`` of the common padded layout, so chosen
    token k meets rejected token k; prompt and pad positions have Δ = 0 and add a constant
    log 2 that still counts in the mean. It equals DPO only for one-token responses.
    """
    J = max(pi_w.shape[-1], pi_l.shape[-1])
    d_w = _pad_to((pi_w - ref_w) * m_w * w_w, J)
    d_l = _pad_to((pi_l - ref_l) * m_l * w_l, J)
    return -F.logsigmoid(beta * (d_w - d_l)).mean()


def rpo_loss(pi_w, ref_w, pi_l, ref_l, m_w, m_l, beta: float, alpha: float = 1.0):
    """Pang et al.: DPO − α · log πθ(y^w|x) / |y^w| (length-normalised NLL on chosen)."""
    nll = -(pi_w * m_w).sum(-1) / m_w.sum(-1).clamp(min=1)
    return dpo_loss(pi_w, ref_w, pi_l, ref_l, m_w, m_l, beta) + alpha * nll.mean()


def sequential_kl(ref_logits: torch.Tensor, logits: torch.Tensor, mask: torch.Tensor):
    """D(x, y) = Σ_t KL(π_ref(·|x, y_<t) ‖ πθ(·|x, y_<t)) over response positions (TDPO)."""
    ref_logp = ref_logits[:, :-1].float().log_softmax(-1)
    logp = logits[:, :-1].float().log_softmax(-1)
    kl = (ref_logp.exp() * (ref_logp - logp)).sum(-1)
    return (kl * mask).sum(-1)


def tdpo_loss(pi_w, ref_w, pi_l, ref_l, m_w, m_l, kl_w, kl_l, beta: float, alpha: float = 0.5):
    """TDPO2 (Zeng et al.): −log σ(β[(Δ^w − Δ^l) − α(D(x,y^l) − sg D(x,y^w))])."""
    delta_w = ((pi_w - ref_w) * m_w).sum(-1)
    delta_l = ((pi_l - ref_l) * m_l).sum(-1)
    margin = (delta_w - delta_l) - alpha * (kl_l - kl_w.detach())
    return -F.logsigmoid(beta * margin).mean()


def sft_loss(pi_w, m_w) -> torch.Tensor:
    """Mean next-token NLL over the chosen response tokens."""
    return -(pi_w * m_w).sum() / m_w.sum().clamp(min=1)


def _pad_to(x: torch.Tensor, J: int) -> torch.Tensor:
    return F.pad(x, (0, J - x.shape[-1])) if x.shape[-1] < J else x


METHODS = ("sft", "dpo", "rpo", "tdpo", "cdpo_seq", "cdpo_code", "oracle", "cdpo_shuffled")
