"""Benchmark helpers: median timings and ratios against a baseline from the same run.

Absolute speeds depend on the machine; ratios measured in one process, on the same inputs,
are what carry over. Every package's `bench` command prints its figures with `ratio_table`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def time_call(fn: Callable[[], object], *, warmup: int = 1, repeats: int = 5) -> float:
    """Median wall-clock seconds of `fn()` over `repeats` calls after `warmup` calls."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def ratio_table(
    rows: dict[str, float], baseline: str, unit: str, higher_is_better: bool = True
) -> str:
    """A text table of each figure and its ratio to `rows[baseline]`."""
    if baseline not in rows:
        raise ValueError(f"baseline {baseline!r} is not one of {sorted(rows)}")
    base = rows[baseline]
    width = max(len(name) for name in rows)
    label = "× baseline" + (" (higher is faster)" if higher_is_better else " (lower is faster)")
    lines = [f"{'':{width}}  {unit:>14}  {label}"]
    for name, value in rows.items():
        ratio = value / base if base else float("nan")
        mark = "  (baseline)" if name == baseline else ""
        lines.append(f"{name:{width}}  {value:14.4g}  {ratio:8.3f}{mark}")
    return "\n".join(lines)
