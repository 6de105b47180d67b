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

    # Sampling: same draws with and without the cache.
    runs = {}
    for cache in (False, True):
        runs[cache] = sample(
            model,
            batch,
            length,
            steps,
            schedule,
            cache=cache,
            generator=torch.Generator().manual_seed(1),
        )
    assert torch.equal(runs[True].tokens, runs[False].tokens)
    nfe_cached = runs[True].nfe.double().mean().item()
    nfe_ratio = steps / nfe_cached
    wall_ratio = runs[False].seconds / runs[True].seconds
    tokens = batch * length
    rows = {
        "sampling, uncached (tokens/s)": tokens / runs[False].seconds,
        "sampling, cached (tokens/s)": tokens / runs[True].seconds,
    }
    print(ratio_table(rows, "sampling, uncached (tokens/s)", "tokens/s"))
    print(
        f"training: {train_batch * length / train_s:.0f} tokens/s "
        f"({train_s * 1000:.1f} ms per step of {train_batch} x {length})"
    )
    print(
        f"NFE per sequence: uncached {steps}, cached {nfe_cached:.1f} "
        f"(analytic E-NFE {expected_nfe(steps, length):.1f}); NFE ratio {nfe_ratio:.2f}"
    )
    verdict = "meets" if wall_ratio >= 0.8 * nfe_ratio else "misses"
    print(
        f"wall-clock speed-up {wall_ratio:.2f} = {wall_ratio / nfe_ratio:.2f} x NFE ratio "
        f"({verdict} the 0.8 x target)"
    )
    result = {
        "train_tokens_per_s": train_batch * length / train_s,
        "nfe_cached": nfe_cached,
        "nfe_ratio": nfe_ratio,
        "wall_ratio": wall_ratio,
        **rows,
    }
    if record:
        table = Table(
            f"Benchmark: {model_size} model, L = {length}, {steps} steps, batch {batch}",
            ["figure", "value"],
            [{"figure": k.replace("_", " "), "value": v} for k, v in result.items()],
            note="Ratios measured in one process on a shared 2-core machine, one torch thread.",
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
