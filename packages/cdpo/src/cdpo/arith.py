"""Procedural GSM8K-like arithmetic word problems with engineered critical tokens (spec 6.1).

A problem is a start value followed by two or three operations and a question, for example::

    Tom has 2 3 apples . Tom finds 7 . Tom lends 4 . Tom buys 3 packs of 4 .
    how many apples does Tom have ?

Its canonical solution writes one equation per operation, one token per digit::

    2 3 + 7 = 3 0 . 3 0 - 4 = 2 6 . 3 * 4 = 1 2 . 2 6 + 1 2 = 3 8 . answer 3 8 <eos>

The pretraining corpus writes solutions with injected errors. The trap verbs are the analogue of
the paper's "owed" example: ``lends`` means subtraction but the corpus writes ``+`` 65% of the
time, so a model trained on it decodes the wrong operator greedily; ``receives`` means addition
and is flipped 35% of the time. After an error every later step is computed correctly from the
wrong running value, so a wrong trajectory is self-consistent and its first departure from the
canonical solution (the ground-truth critical token) is known exactly.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

SPECIALS = ("<pad>", "<bos>", "<eos>")
DIGITS = tuple(str(d) for d in range(10))
SYMBOLS = ("+", "-", "*", "=", ".", "?")
NAMES = ("Tom", "Ann", "Sam", "Mia", "Leo", "Zoe", "Max", "Eva")
ITEMS = ("apples", "pens", "cards", "eggs", "coins", "books", "shells", "stamps")
ADD_VERBS = ("finds", "gets")
SUB_VERBS = ("loses", "eats", "sells")
TRAP_A = "lends"  # true operator '-', corpus writes '+' with probability 0.65
TRAP_B = "receives"  # true operator '+', corpus writes '-' with probability 0.35
GLUE = ("has", "buys", "packs", "of", "how", "many", "does", "have", "answer")
VOCAB = SPECIALS + DIGITS + SYMBOLS + NAMES + ITEMS + ADD_VERBS + SUB_VERBS + (TRAP_A, TRAP_B)
VOCAB = VOCAB + GLUE

TRUE_OP = {**{v: "+" for v in ADD_VERBS}, **{v: "-" for v in SUB_VERBS}}
TRUE_OP.update({TRAP_A: "-", TRAP_B: "+"})


class ArithTokenizer:
    """Word-level tokenizer over the fixed vocabulary; numbers are split into digits."""

    def __init__(self) -> None:
        self.vocab = list(VOCAB)
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.pad_id, self.bos_id, self.eos_id = (self.index[s] for s in SPECIALS)

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        ids = []
        for word in text.split():
            if word not in self.index:
                raise ValueError(f"token {word!r} is not in the arithmetic vocabulary")
            ids.append(self.index[word])
        return ids

    def decode(self, ids) -> str:
        return " ".join(self.vocab[int(i)] for i in ids)


def digits(n: int) -> list[str]:
    return list(str(n))


@dataclass(frozen=True)
class Problem:
    """One word problem; ``steps`` holds ``(verb, operand)``, a pack step ``("buys", (a, b))``."""

    name: str
    item: str
    start: int
    steps: tuple

    def question(self) -> list[str]:
        words = [self.name, "has", *digits(self.start), self.item, "."]
        for verb, x in self.steps:
            if verb == "buys":
                words += [self.name, "buys", *digits(x[0]), "packs", "of", *digits(x[1]), "."]
            else:
                words += [self.name, verb, *digits(x), "."]
        return words + ["how", "many", self.item, "does", self.name, "have", "?"]

    @property
    def answer(self) -> int:
        return solve(self)

    @property
    def kind(self) -> str:
        verbs = {v for v, _ in self.steps}
        if TRAP_A in verbs:
            return "trap_a"
        if TRAP_B in verbs:
            return "trap_b"
        return "plain"

    def key(self) -> str:
        return hashlib.sha1(" ".join(self.question()).encode()).hexdigest()


def solve(problem: Problem) -> int:
    value = problem.start
    for verb, x in problem.steps:
        if verb == "buys":
            value += x[0] * x[1]
        else:
            value = value + x if TRUE_OP[verb] == "+" else value - x
    return value


def random_problem(rng: random.Random, n_steps: int | None = None) -> Problem:
    """Draw a problem whose correct running value stays in [0, 99]."""
    verbs = [*ADD_VERBS, *SUB_VERBS, TRAP_A, TRAP_B, "buys"]
    weights = [1, 1, 1, 1, 1, 2.2, 1.2, 1.2]
    while True:
        n = n_steps or rng.choice((2, 3))
        steps = []
        for _ in range(n):
            verb = rng.choices(verbs, weights)[0]
            x = (rng.randint(2, 5), rng.randint(2, 5)) if verb == "buys" else rng.randint(1, 9)
            steps.append((verb, x))
        p = Problem(rng.choice(NAMES), rng.choice(ITEMS), rng.randint(10, 60), tuple(steps))
        if all(0 <= v <= 99 for v in running_values(p)):
            return p


def running_values(problem: Problem) -> list[int]:
    values, value = [], problem.start
    for verb, x in problem.steps:
        if verb == "buys":
            value += x[0] * x[1]
        else:
            value = value + x if TRUE_OP[verb] == "+" else value - x
        values.append(value)
    return values


@dataclass(frozen=True)
class Noise:
    """Error rates of the pretraining corpus (spec 6.1)."""

    flip_a: float = 0.65
    flip_b: float = 0.35
    slip: float = 0.06
    copy: float = 0.03


@dataclass
class Trajectory:
    """A written solution and, when wrong, where and how it first departed from the canon."""

    words: list[str]
    answer: int
    error_pos: int | None = None  # index into ``words`` of the first injected error
    error_kind: str | None = None  # trap_a | trap_b | slip | copy
    events: list = field(default_factory=list)


def write_solution(problem: Problem, rng: random.Random | None = None, noise: Noise | None = None):
    """The solution text, canonical when ``noise`` is None, else with injected errors.

    Errors are drawn per problem: trap-verb flips per trap step, and at most one arithmetic
    slip and one operand copy error at a uniformly chosen equation.
    """
    noisy = noise is not None and rng is not None
    n = len(problem.steps)
    slip_at = rng.randrange(n) if noisy and rng.random() < noise.slip else -1
    copy_at = rng.randrange(n) if noisy and rng.random() < noise.copy else -1
    words: list[str] = []
    events: list[tuple[int, str]] = []
    value = problem.start

    def emit_number(true: int, written: int, kind: str) -> int:
        # Record the first differing digit of an injected number as the error position.
        t, w = digits(true), digits(written)
        if t != w:
            k = next((i for i in range(min(len(t), len(w))) if t[i] != w[i]), min(len(t), len(w)))
            events.append((len(words) + k, kind))
        words.extend(w)
        return written

    for i, (verb, x) in enumerate(problem.steps):
        if verb == "buys":
            a, b = x
            emit_number(a, a, "copy")
            words += ["*", *digits(b), "="]
            product = emit_number(a * b, _slip(a * b, rng) if i == slip_at else a * b, "slip")
            words.append(".")
            words += [*digits(value), "+", *digits(product), "="]
            value = emit_number(value + product, value + product, "slip")
            words.append(".")
            continue
        op = TRUE_OP[verb]
        if noisy and verb in (TRAP_A, TRAP_B):
            flip = noise.flip_a if verb == TRAP_A else noise.flip_b
            if rng.random() < flip:
                kind = "trap_a" if verb == TRAP_A else "trap_b"
                events.append((len(words) + len(digits(value)), kind))
                op = "-" if op == "+" else "+"
        if op == "-" and value - x < 0:
            op = "+"  # never write a negative running value; a flip that would is undone
            events = [e for e in events if e[0] != len(words) + len(digits(value))]
        words += [*digits(value), op]
        written = x
        if i == copy_at:
            written = rng.choice([d for d in range(1, 10) if d != x])
            if op == "-" and value - written < 0:
                written = x
        emit_number(x, written, "copy")
        words.append("=")
        result = value + written if op == "+" else value - written
        if i == slip_at:
            result = _slip(result, rng)
        value = emit_number(value + written if op == "+" else value - written, result, "slip")
        words.append(".")
    words += ["answer", *digits(value)]
    events.sort()
    traj = Trajectory(words, value, events=events)
    if events:
        traj.error_pos, traj.error_kind = events[0]
    return traj


def _slip(value: int, rng: random.Random) -> int:
    options = [value + d for d in (-3, -2, -1, 1, 2, 3) if value + d >= 0]
    return rng.choice(options)


def first_divergence(a: list, b: list) -> int | None:
    """First index where two token sequences differ (None when equal)."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def parse_answer(words: list[str]) -> int | None:
    """The integer after the last ``answer`` token, or None when there is none."""
    if "answer" not in words:
        return None
    i = len(words) - 1 - words[::-1].index("answer")
    ds = []
    for w in words[i + 1 :]:
        if w in DIGITS:
            ds.append(w)
        else:
            break
    return int("".join(ds)) if ds else None


def make_split(seed: int, n: int, exclude: set[str] = frozenset(), n_steps=None) -> list[Problem]:
    """``n`` distinct problems from ``seed`` whose question hash is not in ``exclude``."""
    rng = random.Random(seed)
    out, seen = [], set(exclude)
    while len(out) < n:
        p = random_problem(rng, n_steps)
        if p.key() not in seen:
            seen.add(p.key())
            out.append(p)
    return out
