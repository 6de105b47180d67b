"""The generator's ground truth (spec 7.3.2), the tokenizer, the grader and the splits."""

import random

from cdpo import arith
from cdpo.arith import ArithTokenizer, Noise
from cdpo.task import divergence_kind, parse_equation


def test_injected_error_index_is_the_first_divergence_and_canon_is_gold():
    rng = random.Random(0)
    kinds = set()
    for _ in range(3000):
        p = arith.random_problem(rng)
        canon = arith.write_solution(p)
        assert canon.answer == p.answer == arith.solve(p)
        assert arith.parse_answer(canon.words) == p.answer
        noisy = arith.write_solution(p, rng, Noise())
        assert arith.first_divergence(canon.words, noisy.words) == noisy.error_pos
        assert arith.parse_answer(noisy.words) == noisy.answer
        if noisy.error_kind:
            kinds.add(noisy.error_kind)
            assert (
                divergence_kind(p, canon.words, noisy.error_pos)
                in {
                    "trap_a": {"trap_a"},
                    "trap_b": {"trap_b"},
                    "slip": {"result"},
                    "copy": {"operand"},
                }[noisy.error_kind]
            )
    assert kinds == {"trap_a", "trap_b", "slip", "copy"}


def test_trap_a_is_usually_written_wrong_in_the_corpus():
    rng = random.Random(1)
    flips = n = 0
    for _ in range(2000):
        p = arith.random_problem(rng)
        if p.kind != "trap_a":
            continue
        t = arith.write_solution(p, rng, Noise(slip=0, copy=0))
        n += 1
        flips += t.error_kind == "trap_a"
    assert 0.55 < flips / n < 0.75


def test_tokenizer_round_trip_and_digits():
    tok = ArithTokenizer()
    text = "Tom has 2 3 apples . Tom lends 4 . how many apples does Tom have ?"
    assert tok.decode(tok.encode(text)) == text
    assert arith.digits(305) == ["3", "0", "5"]
    assert len(tok) == len(set(tok.vocab))


def test_answer_parser_on_edge_cases():
    assert arith.parse_answer(["1", "+", "2", "=", "3", ".", "answer", "3", "<eos>"]) == 3
    assert arith.parse_answer(["answer", "1", "2", "answer", "4", "5"]) == 45
    assert arith.parse_answer(["1", "+", "2", "=", "3", "."]) is None
    assert arith.parse_answer(["answer", ".", "4"]) is None


def test_equation_checker():
    assert parse_equation(["2", "3", "+", "7", "=", "3", "0"]) is True
    assert parse_equation(["2", "3", "-", "7", "=", "1", "5"]) is False
    assert parse_equation(["3", "*", "4", "=", "1", "2"]) is True
    assert parse_equation(["answer", "3", "8"]) is None
    assert parse_equation(["2", "+", "=", "4"]) is None


def test_splits_are_disjoint_and_reproducible():
    test = arith.make_split(1, 200)
    train = arith.make_split(2, 300, exclude={p.key() for p in test})
    assert not {p.key() for p in test} & {p.key() for p in train}
    assert [p.key() for p in arith.make_split(1, 200)] == [p.key() for p in test]
    assert all(0 <= v <= 99 for p in train for v in arith.running_values(p))
