"""Tables, figures and the headline of the SynthID reproduction, built from run results."""

from __future__ import annotations

import numpy as np

from reprozoo.metrics import paired_difference
from reprozoo.results import Figure, Table, summarize

METRICS = (  # (column, key in the per-run metrics, scale to percent)
    ("TAR@1e-3", "tar@1e-03"),
    ("TAR@1e-4", "tar@1e-04"),
    ("TAR@1e-5", "tar@1e-05"),
    ("10-fold acc", "acc10"),
    ("10-fold acc (hard)", "hard_acc10"),
    ("template TAR@1e-4", "tmpl_tar@1e-04"),
    ("flip-sum TAR@1e-4", "flip_tar@1e-04"),
    ("WDFS rate", "wdfs_rate"),
)
DIAG = (
    ("mean", "mean"),
    ("p99.9", "p999"),
    ("max", "max"),
    ("W1 to P_all", "w1"),
    ("KS to P_all", "ks"),
)


def _values(results, head, unpg, key, seeds):
    name = f"{head}{'+unpg' if unpg else ''}"
    return [100.0 * results[f"{name}/seed{s}"][key] for s in seeds]


def verification_table(results, heads, seeds, names) -> Table:
    rows = []
    for head in heads:
        for unpg in (False, True):
            row = {"method": names[head] + ("+UNPG" if unpg else "")}
            for col, key in METRICS:
                row[col] = summarize(_values(results, head, unpg, key, seeds))
            rows.append(row)
    return Table(
        title="SynthID open-set verification (%, mean ± std over seeds)",
        columns=["method", *[c for c, _ in METRICS]],
        rows=rows,
        note="All-pairs 1:1 on identity-disjoint test identities; TAR at the largest ROC point "
        "with FAR ≤ target. 10-fold: identity-disjoint folds, threshold from the other nine. "
        "Hard: sibling negatives and largest-pose positives. WDFS rate: positive pairs above "
        "both members' hardest negative.",
    )


def delta_table(results, heads, seeds, names, paper) -> Table:
    rows = []
    cols = ["TAR@1e-3", "TAR@1e-4", "TAR@1e-5", "10-fold acc", "10-fold acc (hard)"]
    for head in heads:
        row = {"base head": names[head]}
        for col, key in METRICS:
            if col not in cols:
                continue
            d = paired_difference(
                _values(results, head, True, key, seeds), _values(results, head, False, key, seeds)
            )
            row[col] = (
                f"{d['mean']:+.2f} ± {d['std']:.2f} [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}]"
            )
        rows.append(row)
    return Table(
        title="Paired difference (+UNPG) − base, points (mean ± std [95% t interval])",
        columns=["base head", *cols],
        rows=rows,
        paper={names[h]: paper[names[h]] for h in heads if names[h] in paper},
        note="Same seed, data order and schedule per pair. The paper column is the official "
        "README's MS1MV2 / IResNet-100 difference on IJB-C (TAR) and LFW (accuracy).",
    )


def diagnostics_table(results, heads, seeds, names) -> Table:
    rows = []
    for head in heads:
        for unpg in (False, True):
            for dist, label in (("all", "P_all"), ("cl", "P_CL"), ("ml", "P_ML"), ("un", "P_UN")):
                row = {"model": names[head] + ("+UNPG" if unpg else ""), "set": label}
                for col, key in DIAG:
                    vals = [
                        results[f"{head}{'+unpg' if unpg else ''}/seed{s}"]["mismatch"][dist].get(
                            key, np.nan
                        )
                        for s in seeds
                    ]
                    row[col] = "—" if np.isnan(vals).any() else summarize(vals)
                rows.append(row)
    return Table(
        title="Negative-pair similarity distributions on a training probe (mechanism claim)",
        columns=["model", "set", *[c for c, _ in DIAG]],
        rows=rows,
        note="P_all: all negative sample pairs; P_CL: sample to other-class proxies (what the "
        "margin loss sees); P_ML: negatives inside simulated batches; P_UN: P_CL plus the "
        "filtered P_ML, weighted as the UNPG loss sees them.",
    )


def figures(results, heads, seeds, names, roc_grid, prefix="synthid") -> list[Figure]:
    series = {}
    for head in heads:
        for unpg in (False, True):
            name = f"{head}{'+unpg' if unpg else ''}"
            curves = np.array([results[f"{name}/seed{s}"]["roc"] for s in seeds])
            series[names[head] + ("+UNPG" if unpg else "")] = {
                "mean": curves.mean(0).tolist(),
                "std": curves.std(0).tolist(),
            }
    roc = Figure(
        title="SynthID ROC (mean ± std over seeds)",
        file=f"{prefix}_roc.png",
        x=roc_grid,
        series=series,
        xlabel="FAR",
        ylabel="TAR",
        logx=True,
    )
    base = results[f"{heads[0]}/seed{seeds[0]}"]["mismatch"]
    hist = Figure(
        title=f"Negative similarities seen by the loss ({names[heads[0]]}, seed {seeds[0]})",
        file=f"{prefix}_negatives.png",
        x=base["all"]["hist_centres"],
        series={
            "P_all": base["all"]["hist"],
            "P_CL (proxies)": base["cl"]["hist"],
            "P_UN (proxies + filtered pairs)": base["un"]["hist"],
        },
        xlabel="cosine similarity",
        ylabel="density",
        logy=True,
    )
    return [roc, hist]


def headline(results, heads, seeds, names) -> str:
    parts = []
    for head in heads:
        vals = {
            k: paired_difference(
                _values(results, head, True, key, seeds), _values(results, head, False, key, seeds)
            )["mean"]
            for k, key in (("1e-4", "tar@1e-04"), ("1e-5", "tar@1e-05"), ("acc", "acc10"))
        }
        parts.append(
            f"{names[head]}+UNPG − {names[head]}: TAR@1e-4 {vals['1e-4']:+.1f}, "
            f"TAR@1e-5 {vals['1e-5']:+.1f}, 10-fold {vals['acc']:+.2f} pts"
        )
    closer = sum(
        results[f"{h}/seed{s}"]["mismatch"]["un"]["w1"]
        < results[f"{h}/seed{s}"]["mismatch"]["cl"]["w1"]
        for h in heads
        for s in seeds
    )
    parts.append(
        f"P_UN closer to P_all than P_CL (W1) in {closer}/{len(heads) * len(seeds)} base runs"
    )
    return f"SynthID, {len(seeds)} seeds: " + "; ".join(parts) + "."
