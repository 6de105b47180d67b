"""`radd bench`: training and sampling throughput, cached sampler against uncached.

Both samplers run in the same process on the same random-weight model and the same random
draws; the unmasking decisions do not depend on the weights, so the cache's NFE saving is the
same as for a trained model.
"""

from __future__ import annotations

import time

import torch

from radd.losses import draw_noise, training_loss
from radd.model import build_model
from radd.sampler import expected_nfe, sample
from radd.schedule import LogLinearSchedule
from reprozoo.bench import ratio_table, time_call
from reprozoo.results import Table, write_record
from reprozoo.runtime import get_logger, log_run_header

log = get_logger("radd")


def run_bench(
    model_size: str = "base",
    length: int = 128,
    steps: int = 1024,
    batch: int = 4,
    train_batch: int = 32,
    record: str | None = None,
) -> dict:
    started = time.time()
    torch.manual_seed(0)
    config = {
        "model_size": model_size,
        "length": length,
        "steps": steps,
        "batch": batch,
        "train_batch": train_batch,
    }
    log_run_header(log, package="radd", config=config, seed=0, device="cpu")
    model = build_model(model_size, 257, length)
    torch.nn.init.normal_(model.out.weight, std=0.02)
    schedule = LogLinearSchedule()

    # Training throughput: one lambda-DCE step on a random batch.
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x0 = torch.randint(0, 257, (train_batch, length))
    g = torch.Generator().manual_seed(0)

    def step():
        loss = training_loss(
            model, x0, draw_noise("lambda_dce", train_batch, length, g), "lambda_dce", schedule
        )
        opt.zero_grad()
        loss.backward()
        opt.step()

    train_s = time_call(step, warmup=1, repeats=3)
    model.eval()

    # Sampling: same draws with and without the cache, per sequence (batch 1) and batched.
    rows, speedups = {}, {}
    for b in sorted({1, batch}):
        runs = {
            cache: sample(
                model,
                b,
                length,
                steps,
                schedule,
                cache=cache,
                generator=torch.Generator().manual_seed(1),
            )
            for cache in (False, True)
        }
        assert torch.equal(runs[True].tokens, runs[False].tokens)
        nfe = runs[True].nfe.double().mean().item()
        rows[f"sampling, uncached, batch {b} (tokens/s)"] = b * length / runs[False].seconds
        rows[f"sampling, cached, batch {b} (tokens/s)"] = b * length / runs[True].seconds
        speedups[b] = (steps / nfe, runs[False].seconds / runs[True].seconds, nfe)
    rows["training (tokens/s)"] = train_batch * length / train_s
    print(ratio_table(rows, "sampling, uncached, batch 1 (tokens/s)", "tokens/s"))
    print(f"training step: {train_s * 1000:.1f} ms for {train_batch} x {length} tokens")
    result = dict(rows)
    for b, (nfe_ratio, wall_ratio, nfe) in speedups.items():
        verdict = "meets" if wall_ratio >= 0.8 * nfe_ratio else "misses"
        print(
            f"batch {b}: NFE per sequence uncached {steps}, cached {nfe:.1f} (analytic E-NFE "
            f"{expected_nfe(steps, length):.1f}); NFE ratio {nfe_ratio:.2f}; wall-clock "
            f"speed-up {wall_ratio:.2f} = {wall_ratio / nfe_ratio:.2f} x NFE ratio "
            f"({verdict} the 0.8 x target)"
        )
        result[f"batch {b}: NFE cached per sequence"] = nfe
        result[f"batch {b}: NFE ratio"] = nfe_ratio
        result[f"batch {b}: wall-clock speed-up"] = wall_ratio
        result[f"batch {b}: speed-up / NFE ratio"] = wall_ratio / nfe_ratio
    if record:
        table = Table(
            f"Benchmark: {model_size} model, L = {length}, {steps} steps, batch {batch}",
            ["figure", "value"],
            [{"figure": k, "value": v} for k, v in result.items()],
            note="Measured in one process on a shared 2-core machine, one torch thread. In a "
            "batch the cached sampler runs the network on the sub-batch that needs it, so its "
            "calls are smaller and less efficient than the uncached full-batch calls.",
        )
        write_record(
            record,
            package="radd",
            experiment="bench",
            config=config,
            seeds=[0],
            tables=[table],
            device="cpu",
            started=started,
        )
    return result
