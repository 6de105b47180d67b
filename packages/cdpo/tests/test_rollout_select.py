"""Rollout rule and pass@k (spec 7.3.4-5) and the selection rules (spec 7.3.6)."""

import itertools
import math
import random

import pytest

from cdpo.rollout import find_critical, pass_at_k
from cdpo.select import select_pair, select_sft_neg, select_sft_pos


def test_critical_position_finder():
    # Counts out of 64 with the official "more than 3 correct resets" rule.
    assert find_critical([32, 26, 0, 0, 0], reset_above=3) == 2
    assert find_critical([32, 0, 13, 0, 0], reset_above=3) == 3
    assert find_critical([32, 0, 2, 0], reset_above=3) == 1  # 2 <= 3 does not reset
    assert find_critical([5, 9, 1], reset_above=3) is None
    assert find_critical([0, 10, 20], reset_above=3) == 0  # last abandoned candidate


def test_pass_at_k_matches_enumeration():
    for n in range(1, 8):
        for c in range(n + 1):
            for k in range(1, n + 1):
                subsets = list(itertools.combinations(range(n), k))
                brute = sum(any(i < c for i in s) for s in subsets) / len(subsets)
                assert pass_at_k(n, c, k) == pytest.approx(brute)


def test_pass_at_k_edges_and_monotonicity():
    assert pass_at_k(64, 0, 64) == 0
    assert pass_at_k(10, 4, 7) == 1.0
    vals = [pass_at_k(32, 3, k) for k in range(1, 33)]
    assert all(a <= b for a, b in zip(vals, vals[1:], strict=False))
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)


def samples():
    # (response, answer, correct): correct answer 7 (x3), 8 (x1); wrong 5 (x4), 6 (x3), 9 (x1),
    # 4 (x2); one empty answer.
    out = [((i,), 7, True) for i in range(3)] + [((10,), 8, True)]
    out += [((20 + i,), 5, False) for i in range(4)] + [((30 + i,), 6, False) for i in range(3)]
    out += [((40,), 9, False)] + [((50 + i,), 4, False) for i in range(2)] + [((60,), None, False)]
    return out


def test_selection_rules_follow_the_released_semantics():
    for seed in range(20):
        rng = random.Random(seed)
        pos = select_sft_pos(samples(), rng)
        assert len(pos) == 1 and pos[0][1] == 7
        neg = select_sft_neg(samples(), rng)
        # n_err = 10 non-empty wrong samples, target ceil(0.5 * 10) = 5: groups 5 (4) then 6 (3).
        assert [s[1] for s in neg] == [5, 6]
        chosen, rejected = select_pair(samples(), rng)
        assert chosen[1] == 7 and rejected[1] == 5


def test_negative_selection_skips_singletons_after_the_first_group():
    s = [((0,), 1, True)] + [((1,), 2, False), ((2,), 2, False)]
    s += [((3 + i,), 10 + i, False) for i in range(4)]  # singletons
    s += [((9,), 3, False), ((10,), 3, False)]
    picked = select_sft_neg(s, random.Random(0))
    # target ceil(0.5 * 8) = 4: group 2 (2 samples), then group 3 (2), singletons never.
    assert sorted(x[1] for x in picked) == [2, 3]
    assert math.ceil(0.5 * 8) == 4


def test_questions_without_both_kinds_give_no_pair():
    assert select_pair([((1,), 3, True)], random.Random(0)) is None
    assert select_pair([((1,), 3, False), ((2,), None, False)], random.Random(0)) is None
