"""Sampling experiments of the reproduction: caching, E-NFE, wall-clock and sample quality."""

from __future__ import annotations

import torch

from radd.data import OracleDenoiser
from radd.sampler import expected_nfe, sample, sample_ordered
from reprozoo.results import Figure, Table, summarize


def sampling_tables(models: dict, rc, judge, schedule) -> tuple[list, list, dict]:
    """Cached vs uncached on the lambda-DCE pydoc models, one run per seed and step count."""
    L = rc.pydoc_length
    raw: dict = {
        n: {
            "nfe": [],
            "calls": [],
            "t_cached": [],
            "t_uncached": [],
            "same": [],
            "judge": [],
            "entropy": [],
        }
        for n in rc.sample_steps
    }
    for n in rc.sample_steps:
        for s in rc.seeds:
            model = models["lambda_dce", s]
            runs = {
                cache: sample(
                    model,
                    rc.sample_batch,
                    L,
                    n,
                    schedule,
                    cache=cache,
                    generator=torch.Generator().manual_seed(1000 * s + n),
                )
                for cache in (True, False)
            }
            cached, uncached = runs[True], runs[False]
            r = raw[n]
            r["nfe"].append(cached.nfe.double().mean().item())
            r["calls"].append(cached.calls)
            r["t_cached"].append(cached.seconds)
            r["t_uncached"].append(uncached.seconds)
            r["same"].append(bool(torch.equal(cached.tokens, uncached.tokens)))
            r["judge"].append(judge.nll_per_token(cached.tokens))
            counts = torch.bincount(cached.tokens.reshape(-1), minlength=257).double()
            p = counts[counts > 0] / counts.sum()
            r["entropy"].append(float(-(p * p.log()).sum()))

    speed_rows, quality_rows = [], []
    for n in rc.sample_steps:
        r = raw[n]
        speed_rows.append(
            {
                "steps": n,
                "E-NFE n(1-(1-1/n)^L)": expected_nfe(n, L),
                "NFE cached (measured)": summarize(r["nfe"]),
                "NFE ratio uncached/cached": summarize([n / v for v in r["nfe"]]),
                "time uncached (s)": summarize(r["t_uncached"]),
                "time cached (s)": summarize(r["t_cached"]),
                "wall-clock speed-up": summarize(
                    [u / c for u, c in zip(r["t_uncached"], r["t_cached"], strict=True)]
                ),
                "identical samples": "yes" if all(r["same"]) else "NO",
            }
        )
        quality_rows.append(
            {
                "sampler": f"tweedie, {n} steps (cached = uncached)",
                "4-gram judge NLL (nats/byte)": summarize(r["judge"]),
                "unigram entropy (nats)": summarize(r["entropy"]),
            }
        )
    ordered_judge, ordered_entropy = [], []
    for s in rc.seeds:
        out = sample_ordered(
            models["lambda_dce", s],
            rc.sample_batch,
            L,
            generator=torch.Generator().manual_seed(7 + s),
        )
        ordered_judge.append(judge.nll_per_token(out.tokens))
        counts = torch.bincount(out.tokens.reshape(-1), minlength=257).double()
        p = counts[counts > 0] / counts.sum()
        ordered_entropy.append(float(-(p * p.log()).sum()))
    quality_rows.append(
        {
            "sampler": f"AO-ARM ordered, random order ({L} NFE)",
            "4-gram judge NLL (nats/byte)": summarize(ordered_judge),
            "unigram entropy (nats)": summarize(ordered_entropy),
        }
    )
    speed = Table(
        f"Cached vs uncached sampling (pydoc model, L = {L}, batch {rc.sample_batch})",
        list(speed_rows[0]),
        speed_rows,
        note="NFE per sequence; the same random draws give the same samples with and without "
        "the cache. Wall-clock times on a shared 2-core machine, one torch thread.",
    )
    quality = Table(
        "Sample quality by a byte 4-gram judge fitted on the training split",
        list(quality_rows[0]),
        quality_rows,
        note="Lower judge NLL = more corpus-like bytes; the unigram entropy guards against "
        "low-diversity samples scoring well.",
    )
    steps = list(rc.sample_steps)
    figures = [
        Figure(
            "Network evaluations per sequence",
            "radd_nfe.png",
            x=steps,
            series={
                "uncached (NFE = steps)": steps,
                "cached, analytic E-NFE": [expected_nfe(n, L) for n in steps],
                "cached, measured": {
                    "mean": [summarize(raw[n]["nfe"])["mean"] for n in steps],
                    "std": [summarize(raw[n]["nfe"])["std"] for n in steps],
                },
            },
            xlabel="sampling steps",
            ylabel="NFE",
            logx=True,
            logy=True,
        ),
        Figure(
            "Sampling wall-clock time",
            "radd_wallclock.png",
            x=steps,
            series={
                "uncached": [summarize(raw[n]["t_uncached"])["mean"] for n in steps],
                "cached": [summarize(raw[n]["t_cached"])["mean"] for n in steps],
            },
            xlabel="sampling steps",
            ylabel="seconds per batch",
            logx=True,
            logy=True,
        ),
    ]
    return [speed, quality], figures, {str(k): v for k, v in raw.items()}


def markov_sampling_table(models: dict, corpus: dict, rc, schedule) -> tuple[Table, dict]:
    """Exact NLL of samples under the true chain: the tau-leaping error shrinks with steps."""
    chain, L = corpus["chain"], rc.markov_length
    oracle = OracleDenoiser(chain)
    oracle.length = L
    entropy = chain.entropy(L) / L
    rows, raw = [], {}
    for n in rc.sample_steps:
        nll_model, nll_oracle, nfe = [], [], []
        for s in rc.seeds:
            g = torch.Generator().manual_seed(50 + 1000 * s + n)
            out = sample(models["lambda_dce", s], rc.markov_samples, L, n, schedule, generator=g)
            nll_model.append(-chain.log_prob(out.tokens).mean().item() / L)
            nfe.append(out.nfe.double().mean().item())
            g = torch.Generator().manual_seed(90 + 1000 * s + n)
            ref = sample(oracle, rc.markov_samples, L, n, schedule, generator=g)
            nll_oracle.append(-chain.log_prob(ref.tokens).mean().item() / L)
        raw[str(n)] = {"model": nll_model, "oracle": nll_oracle, "nfe": nfe}
        rows.append(
            {
                "steps": n,
                "E-NFE": expected_nfe(n, L),
                "NFE (measured)": summarize(nfe),
                "sample NLL, trained model (nats/token)": summarize(nll_model),
                "sample NLL, oracle q (nats/token)": summarize(nll_oracle),
                "entropy rate of the data (nats/token)": entropy,
            }
        )
    note = (
        f"{rc.markov_samples} samples of length {L} per seed and step count, scored by the "
        "true chain. With exact q, samples match the data when steps >> L (sample NLL = "
        "entropy); few steps unmask several dependent tokens at once from their marginals."
    )
    return Table(
        "Sample quality on the Markov chain (exact judge)", list(rows[0]), rows, note=note
    ), raw
