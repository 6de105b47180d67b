"""The embedded task: procedural arithmetic problems, their prompts, corpus and grader."""

from __future__ import annotations

import random

from . import arith
from .arith import ArithTokenizer, Noise, Problem


class ArithTask:
    """Prompts, grading and ground truth for the embedded reproduction (spec 6.1)."""

    name = "arith"

    def __init__(self, cfg) -> None:
        self.tok = ArithTokenizer()
        self.pad_id, self.bos_id, self.eos_id = self.tok.pad_id, self.tok.bos_id, self.tok.eos_id
        self.noise = Noise(flip_a=cfg.flip_a, flip_b=cfg.flip_b)
        # Disjoint seeds for the splits plus a hash check: no test question is trained on.
        self.test = arith.make_split(10_000 + cfg.seed, cfg.n_test)
        self.train = arith.make_split(
            20_000 + cfg.seed, cfg.n_train, exclude={p.key() for p in self.test}
        )

    def fingerprint(self, cfg) -> dict:
        keys = (
            "d_model",
            "n_layers",
            "n_heads",
            "d_ffn",
            "pretrain_steps",
            "pretrain_batch",
            "pretrain_lr",
            "pretrain_warmup",
            "flip_a",
            "flip_b",
            "seed",
        )
        return {k: getattr(cfg, k) for k in keys}

    def prompt(self, problem: Problem, fewshot: bool = False) -> list[int]:
        # The tiny model has no context for exemplars: sampling, training and evaluation all
        # use the zero-shot prompt.
        return [self.bos_id] + self.tok.encode(" ".join(problem.question()))

    def corpus_batch(self, rng: random.Random, n: int):
        prompts, responses = [], []
        for _ in range(n):
            p = arith.random_problem(rng)
            traj = arith.write_solution(p, rng, self.noise)
            prompts.append(self.prompt(p))
            responses.append(self.tok.encode(" ".join(traj.words)) + [self.eos_id])
        return prompts, responses

    def show(self, problem: Problem) -> str:
        return " ".join(problem.question())

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids)

    def canonical(self, problem: Problem) -> list[int]:
        return self.tok.encode(" ".join(arith.write_solution(problem).words)) + [self.eos_id]

    def grade(self, problem: Problem, response: list[int]) -> tuple[int | None, bool]:
        """(extracted answer, correct); text after EOS is ignored."""
        if self.eos_id in response:
            response = response[: response.index(self.eos_id)]
        answer = arith.parse_answer(self.tok.decode(response).split())
        return answer, answer is not None and answer == problem.answer

    def truth(self, problem: Problem, response: list[int]) -> tuple[int | None, str]:
        """Ground-truth critical token of a response: its first departure from the canonical
        solution, and the category of the canonical token there."""
        canon = self.canonical(problem)
        k = arith.first_divergence(canon, response)
        if k is None:
            return None, "none"
        return k, divergence_kind(problem, self.tok.decode(canon).split(), k)

    def equation_accuracy(self, responses: list[list[int]]) -> float:
        """Share of written equations ``a op b = c`` whose result is right given their operands."""
        good = total = 0
        for r in responses:
            for eq in " ".join(self.tok.decode(r).split()).split("."):
                parsed = parse_equation(eq.split())
                if parsed is not None:
                    good += int(parsed)
                    total += 1
        return good / total if total else float("nan")


def parse_equation(tokens: list[str]) -> bool | None:
    """Whether ``a op b = c`` (digit tokens) holds; None when the tokens are not an equation."""
    if tokens.count("=") != 1:
        return None
    i = tokens.index("=")
    lhs, rhs = tokens[:i], tokens[i + 1 :]
    ops = [j for j, t in enumerate(lhs) if t in ("+", "-", "*")]
    if len(ops) != 1:
        return None
    a, b = lhs[: ops[0]], lhs[ops[0] + 1 :]
    if not (a and b and rhs) or not all(t in arith.DIGITS for t in a + b + rhs):
        return None
    x, y, c = int("".join(a)), int("".join(b)), int("".join(rhs))
    return {"+": x + y, "-": x - y, "*": x * y}[lhs[ops[0]]] == c


def divergence_kind(problem: Problem, canon_words: list[str], k: int) -> str:
    """trap_a / trap_b for a trap verb's operator, operand / result for a digit, else format."""
    if k >= len(canon_words):
        return "format"
    w = canon_words[k]
    if w in ("+", "-", "*"):
        step = canon_words[:k].count("=")
        # Pack steps write two equations; map the equation index back to the problem step.
        eq = 0
        for verb, _ in problem.steps:
            span = 2 if verb == "buys" else 1
            if eq <= step < eq + span:
                if verb == arith.TRAP_A:
                    return "trap_a"
                if verb == arith.TRAP_B:
                    return "trap_b"
                return "operator"
            eq += span
        return "operator"
    if w in arith.DIGITS:
        tail = canon_words[:k]
        last = max((i for i, x in enumerate(tail) if x in ("=", ".", "+", "-", "*")), default=-1)
        return "result" if last >= 0 and tail[last] == "=" else "operand"
    return "format"
