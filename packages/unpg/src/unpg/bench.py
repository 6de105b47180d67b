"""`unpg bench`: the cost of UNPG in a training step, and evaluation throughput.

All figures come from the same process and the same batch, so they are ratios against a
baseline measured in the same run (``reprozoo.bench.ratio_table``).
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from reprozoo.bench import ratio_table, time_call
from unpg import evaluate as ev
from unpg.heads import ArcFace
from unpg.method import UNPGLoss, unpg_logits
from unpg.model import IResNet


class _ConcatUNPG(UNPGLoss):
    """Reference form: cross-entropy over the explicit B×(C + K) concatenated matrix."""

    def forward(self, x, labels):
        out = self.head(x, labels)
        extra = self.extra_negatives(x, labels)
        return F.cross_entropy(unpg_logits(out.logits, extra, self.head.s), labels)


def run_bench(batch_size: int = 512, classes: int = 2000, steps: int = 5, size: int = 24) -> str:
    torch.manual_seed(0)
    images = torch.randn(batch_size, 1, size, size)
    labels = torch.randint(0, classes, (batch_size,))
    model = IResNet("iresnet-micro", 1, size, 128)
    head = ArcFace(128, classes)
    params = list(model.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    losses = {
        "ArcFace": UNPGLoss(head, unpg=False),
        "ArcFace+UNPG": UNPGLoss(head, unpg=True),
        "ArcFace+UNPG (explicit concat)": _ConcatUNPG(head, unpg=True),
    }

    def step(loss_fn):
        def go():
            opt.zero_grad(set_to_none=True)
            loss_fn(model(images), labels).backward()
            opt.step()

        return go

    # Interleave the variants, one step each per round, so load drift on a shared machine
    # hits all of them alike; report the median round.
    fns = {name: step(fn) for name, fn in losses.items()}
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(steps):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    train = {name: batch_size / statistics.median(t) for name, t in times.items()}

    # Evaluation: all-pairs scoring + ROC on a synthetic embedding set.
    n = 2000
    emb = F.normalize(torch.randn(n, 128), dim=1)
    ident = torch.arange(n) // 10
    pairs = n * (n - 1) / 2

    def score():
        scores, same = ev.all_pair_scores(emb, ident)
        ev.verification_report(scores, same)

    t_eval = time_call(score, warmup=0, repeats=max(1, steps // 2))
    t0 = time.perf_counter()
    ev.embed(model, images)
    t_embed = time.perf_counter() - t0
    table = ratio_table(train, baseline="ArcFace", unit="images/s")
    return (
        f"training step, batch {batch_size}, C = {classes}, iresnet-micro {size}x{size}, "
        f"{torch.get_num_threads()} thread(s)\n{table}\n\n"
        f"evaluation: {pairs / t_eval:,.0f} pairs/s (all-pairs scores + ROC at 3 FARs, "
        f"{n} embeddings); embedding {batch_size / t_embed:,.0f} images/s"
    )
