"""The released code's data-selection rules (spec 1.4).

Each question comes with its graded samples ``(response, answer, correct)``; ``answer`` is the
extracted final answer (None when none could be extracted). Samples are shuffled before they
are grouped by answer, so groups of equal size fall in random order.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict


def group_by_answer(samples: list[tuple], rng: random.Random):
    """``(correct_groups, wrong_groups)``: lists of sample lists, largest group first.

    Samples whose answer is None (nothing extracted) are left out of both.
    """
    order = list(samples)
    rng.shuffle(order)
    groups: dict = defaultdict(list)
    first_seen = {}
    for s in order:
        if s[1] is None:
            continue
        first_seen.setdefault(s[1], len(first_seen))
        groups[s[1]].append(s)
    ranked = sorted(groups.values(), key=lambda g: (-len(g), first_seen[g[0][1]]))
    correct = [g for g in ranked if g[0][2]]
    wrong = [g for g in ranked if not g[0][2]]
    return correct, wrong


def select_sft_pos(samples, rng: random.Random):
    """Top-k = 1: one random member of the most frequent correct-answer group, or None."""
    correct, _ = group_by_answer(samples, rng)
    return [rng.choice(correct[0])] if correct else []


def select_sft_neg(samples, rng: random.Random, top_p: float = 0.5):
    """Top-p = 0.5 over wrong-answer groups: one member of each group, most frequent first,
    until the groups taken cover ⌈top_p · n_err⌉ of the n_err non-empty wrong samples; after
    the first group only answers seen more than once qualify."""
    _, wrong = group_by_answer(samples, rng)
    n_err = sum(len(g) for g in wrong)
    target = math.ceil(top_p * n_err)
    picked, covered = [], 0
    for i, g in enumerate(wrong):
        if covered >= target:
            break
        if i > 0 and len(g) <= 1:
            continue
        picked.append(rng.choice(g))
        covered += len(g)
    return picked


def select_pair(samples, rng: random.Random):
    """Top-k = 1 DPO pair (chosen, rejected) from the most frequent correct and wrong groups."""
    correct, wrong = group_by_answer(samples, rng)
    if not correct or not wrong:
        return None
    return rng.choice(correct[0]), rng.choice(wrong[0])
