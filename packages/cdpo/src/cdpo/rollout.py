"""Critical-token rollouts (spec 1.9, 6.5): find the token after which a wrong trajectory is
locked into failing, then replace it and measure pass@k."""

from __future__ import annotations

import math

import numpy as np
import torch

from .sampling import sample


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k = 1 − C(n−c, k) / C(n, k) from ``c`` correct of ``n`` samples."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))


def find_critical(counts: list[int], reset_above: int) -> int | None:
    """Index of the critical token from per-prefix correct counts (spec 1.9 step 4).

    The first prefix with 0 correct continuations is the candidate; a later prefix with more
    than ``reset_above`` correct abandons it and the scan goes on. When no candidate survives,
    the last abandoned one is returned; None when no prefix ever had 0 correct.
    """
    candidate, fallback = None, None
    for i, c in enumerate(counts):
        if candidate is None:
            if c == 0:
                candidate = i
        elif c > reset_above:
            fallback, candidate = candidate, None
    return candidate if candidate is not None else fallback


@torch.no_grad()
def alternative_tokens(model, prefix: list[int], written: int, n: int, generator) -> list[int]:
    """``n`` draws, with replacement, from the raw next-token softmax after ``prefix`` with the
    written token's probability set to 0 (no temperature, no top-p)."""
    logits = model(input_ids=torch.tensor([prefix])).logits[0, -1].float()
    probs = logits.softmax(-1)
    probs[written] = 0.0
    return torch.multinomial(probs / probs.sum(), n, replacement=True, generator=generator).tolist()


def rollout_trajectory(
    model,
    prompt,
    response,
    grade,
    *,
    n_with,
    n_without,
    reset_above,
    temperature,
    top_p,
    max_new_tokens,
    eos_id,
    pad_id,
    generator,
):
    """Run both rollout experiments on one wrong ``response`` (ids without EOS).

    ``grade(ids)`` says whether a full response is correct. Returns the per-prefix counts, the
    critical index and the correct counts with the token kept and replaced.
    """
    kw = dict(eos_id=eos_id, pad_id=pad_id, max_new_tokens=max_new_tokens, generator=generator)
    prefixes = [response[: i + 1] for i in range(len(response))]
    prompts = [prompt + p for p in prefixes for _ in range(n_with)]
    conts = sample(model, prompts, temperature=temperature, top_p=top_p, **kw)
    counts = []
    for i, p in enumerate(prefixes):
        block = conts[i * n_with : (i + 1) * n_with]
        counts.append(sum(grade(p + c) for c in block))
    k = find_critical(counts, reset_above)
    if k is None:
        return {"counts": counts, "critical": None}
    alts = alternative_tokens(model, prompt + response[:k], response[k], n_without, generator)
    stems = [response[:k] + [a] for a in alts]
    conts = sample(model, [prompt + s for s in stems], temperature=temperature, top_p=top_p, **kw)
    without = sum(grade(s + c) for s, c in zip(stems, conts, strict=True))
    return {"counts": counts, "critical": k, "with": counts[k], "without": without}


def pass_curve(correct_counts: list[int], n: int, ks) -> list[float]:
    """Mean pass@k over trajectories for each k."""
    return [float(np.mean([pass_at_k(n, c, k) for c in correct_counts])) for k in ks]
