"""Answer extraction and equivalence for GSM8K and MATH500 (spec 1.3), written from the rules.

GSM8K: the first number after "he answer is " (after removing currency signs and thousands
separators), else the last number in the text. MATH: the content of the last ``\\boxed{...}``,
normalised. Equivalence is lenient: equal strings, equal normal forms, or numbers equal within
a relative tolerance of 1e-4, where the gold value times 1, 100 and 1/100 all count.
"""

from __future__ import annotations

import math
import re

STOP_STRINGS = ("\n\nQuestion:", "\n\nProblem:")
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def cut_at_stop(text: str) -> str:
    """Drop everything from the first stop string (the model starting a new exemplar)."""
    ends = [text.find(s) for s in STOP_STRINGS if s in text]
    return text[: min(ends)] if ends else text


def _clean_number(s: str) -> str:
    s = s.rstrip(".")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def gsm8k_extract(text: str) -> str | None:
    text = cut_at_stop(text)
    if "he answer is " in text:
        tail = text.split("he answer is ", 1)[1]
        tail = re.sub(r"[$€£,]", "", tail)
        m = NUMBER.search(tail)
        return _clean_number(m.group()) if m else None
    nums = NUMBER.findall(re.sub(r"(?<=\d),(?=\d{3})", "", text))
    return _clean_number(nums[-1]) if nums else None


def gsm8k_gold(answer_field: str) -> str | None:
    """The number after ``####`` in a GSM8K ``answer`` field."""
    if "####" not in answer_field:
        return None
    return _clean_number(answer_field.split("####")[-1].strip().replace(",", ""))


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (braces matched), or None."""
    i = text.rfind("\\boxed")
    if i < 0:
        return None
    j = text.find("{", i)
    if j < 0:
        return None
    depth = 0
    for k in range(j, len(text)):
        depth += {"{": 1, "}": -1}.get(text[k], 0)
        if depth == 0:
            return text[j + 1 : k]
    return None


def normalize_math(s: str) -> str:
    """A canonical string for a MATH answer."""
    s = s.strip()
    s = re.sub(r"\\text\{\s*([^}]*)\}", r"\1", s)
    for a, b in (
        ("\\left", ""),
        ("\\right", ""),
        ("\\!", ""),
        ("\\,", ""),
        ("\\;", ""),
        ("dfrac", "frac"),
        ("tfrac", "frac"),
        ("^\\circ", ""),
        ("^{\\circ}", ""),
        ("\\$", ""),
        ("$", ""),
        ("\\%", "%"),
        (" ", ""),
    ):
        s = s.replace(a, b)
    s = s.rstrip(".")
    s = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac\{([^{}]+)\}(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\sqrt(\w)", r"\\sqrt{\1}", s)
    m = re.fullmatch(r"(-?\d+)/(\d+)", s)
    if m:
        s = f"\\frac{{{m.group(1)}}}{{{m.group(2)}}}"
    s = re.sub(r"(?<![\d.])\.(\d)", r"0.\1", s)
    return s


def to_number(s: str) -> float | None:
    s = normalize_math(s).replace(",", "")
    pct = s.endswith("%")
    s = s.rstrip("%")
    m = re.fullmatch(r"(-?)\\frac\{(-?\d+(?:\.\d+)?)\}\{(-?\d+(?:\.\d+)?)\}", s)
    try:
        if m:
            value = float(m.group(2)) / float(m.group(3)) * (-1 if m.group(1) else 1)
        else:
            value = float(s)
    except (ValueError, ZeroDivisionError):
        return None
    return value / 100 if pct else value


def math_extract(text: str) -> str | None:
    boxed = last_boxed(cut_at_stop(text))
    return normalize_math(boxed) if boxed is not None else None


def math_equal(pred: str | None, gold: str) -> bool:
    """Lenient equivalence (spec 1.3) without the symbolic step (see the README)."""
    if pred is None or pred == "":
        return False
    if pred == gold or normalize_math(pred) == normalize_math(gold):
        return True
    a, b = to_number(pred), to_number(gold)
    if a is None or b is None:
        return False
    return any(math.isclose(a, b * f, rel_tol=1e-4, abs_tol=1e-12) for f in (1, 100, 0.01))
