"""`petal bench`: adaptation speed of every method on the same model and stream.

Images per second over the same corrupted batches, as ratios to Source measured in the same
run. The mean-teacher methods are timed twice: with the confidence trigger never firing
(plain teacher pass) and always firing (32 augmented teacher passes), plus the official CIFAR
behaviour of computing the 32 passes on every batch.
"""

from __future__ import annotations

import time

import torch

from petal.config import profile
from petal.corruptions import corrupt
from petal.data import shapes10
from petal.method import Posterior, build_adapter
from petal.model import SmallBNCNN
from reprozoo.bench import ratio_table

CASES = {
    "Source": ("source", {}),
    "BN adapt": ("bn", {}),
    "TENT": ("tent", {}),
    "CoTTA, no trigger": ("cotta", {"ap": 0.0}),
    "PETAL-SRes, no trigger": ("petal-sres", {"ap": 0.0}),
    "PETAL-FIM, no trigger": ("petal-fim", {"ap": 0.0}),
    "CoTTA, trigger fires": ("cotta", {"ap": 2.0}),
    "PETAL-FIM, trigger fires": ("petal-fim", {"ap": 2.0}),
    "PETAL-FIM, official always-augment": ("petal-fim", {"ap": 0.0, "always_augment": True}),
}


def bench(batches: int = 6, batch_size: int = 32, widths=(8, 16, 32, 64)) -> str:
    torch.manual_seed(0)
    model = SmallBNCNN(num_classes=10, widths=widths)
    posterior = Posterior(
        {n: p.detach() for n, p in model.named_parameters()},
        {n: torch.full_like(p, 1e-4) for n, p in model.named_parameters()},
    )
    x, _ = shapes10(batches * batch_size, seed=0)
    x = corrupt(x, "gaussian_noise", 5, seed=0)
    stream = list(x.split(batch_size))
    rows: dict[str, float] = {}
    for name, (method, overrides) in CASES.items():
        cfg = profile("embedded", method=method, batch_size=batch_size, **overrides)
        adapter = build_adapter(model, cfg, seed=0, posterior=posterior)
        adapter(stream[0])  # warm-up (allocations, first optimiser step)
        start = time.perf_counter()
        for xb in stream:
            adapter(xb)
        rows[name] = len(stream) * batch_size / (time.perf_counter() - start)
    table = ratio_table(rows, baseline="Source", unit="images/s")
    fim_vs_cotta = rows["CoTTA, no trigger"] / rows["PETAL-FIM, no trigger"]
    return (
        f"{table}\n\nPETAL-FIM / CoTTA time per step (no trigger): {fim_vs_cotta:.2f}x; "
        f"with trigger: {rows['CoTTA, trigger fires'] / rows['PETAL-FIM, trigger fires']:.2f}x"
        f"\n(threads: {torch.get_num_threads()}, batch {batch_size}, {batches} batches)"
    )
