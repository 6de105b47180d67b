"""`cdpo reproduce`: the whole pipeline, the analyses and the result record with its tables."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from reprozoo.config import config_to_dict
from reprozoo.metrics import bootstrap_ci, paired_difference
from reprozoo.results import Figure, Table, summarize, write_record

from . import analysis
from .pipeline import Pipeline

LABELS = {
    "base": "Base model",
    "sft": "+ SFT",
    "dpo": "+ DPO",
    "rpo": "+ RPO",
    "tdpo": "+ TokenDPO (TDPO2)",
    "cdpo_seq": "+ cDPO (paper form, sequence)",
    "cdpo_code": "+ cDPO (released code, per position)",
    "oracle": "+ oracle-weighted DPO (diagnostic)",
    "cdpo_shuffled": "+ cDPO weights shuffled within each response (control)",
}
# Table 1 of the paper, GSM8K average over the three models (spec 3.1).
PAPER_GSM8K = {
    "base": 67.0,
    "sft": 70.1,
    "dpo": 71.3,
    "tdpo": 71.7,
    "rpo": 75.4,
    "cdpo_seq": 77.2,
    "cdpo_code": 77.2,
}


def pct(values) -> dict:
    return summarize([100 * v for v in values])


def accuracy_table(results: dict) -> Table:
    rows, paper = [], {}
    for method, runs in results.items():
        label = LABELS.get(method, method)
        row = {
            "method": label,
            "seeds": len(runs),
            "greedy acc": pct([r["accuracy"] for r in runs]),
        }
        for key, col in (
            ("accuracy_trap_a", "trap-A qs"),
            ("accuracy_trap_b", "trap-B qs"),
            ("accuracy_plain", "plain qs"),
            ("equation_accuracy", "equation acc"),
        ):
            if key in runs[0]:
                row[col] = pct([r[key] for r in runs])
        if "sampled_accuracy" in runs[0]:
            row["sampled acc"] = pct([r["sampled_accuracy"] for r in runs])
        rows.append(row)
        if method in PAPER_GSM8K:
            paper[label] = {"greedy acc": PAPER_GSM8K[method]}
    cols = list(rows[0])
    return Table(
        "Accuracy (%) on the test questions, mean ± std over seeds",
        cols,
        rows,
        paper,
        note="paper column: Table 1, GSM8K average over Llama-3-8B/70B and "
        "deepseek-math-7B (the two cDPO rows share the paper's single cDPO number)",
    )


def difference_table(results: dict) -> Table:
    rows = []
    for a, b in (
        ("cdpo_seq", "dpo"),
        ("cdpo_code", "dpo"),
        ("cdpo_seq", "rpo"),
        ("cdpo_code", "rpo"),
        ("cdpo_seq", "cdpo_code"),
        ("cdpo_seq", "cdpo_shuffled"),
        ("oracle", "cdpo_seq"),
    ):
        if a not in results or b not in results:
            continue
        ra, rb = results[a], results[b]
        d = paired_difference([100 * r["accuracy"] for r in ra], [100 * r["accuracy"] for r in rb])
        per_q = np.mean(
            [np.subtract(x["correct"], y["correct"]) for x, y in zip(ra, rb, strict=True)], 0
        )
        lo, hi = bootstrap_ci(100 * per_q, seed=0)
        rows.append(
            {
                "comparison": f"{a} − {b}",
                "mean (points)": round(d["mean"], 2),
                "95% t-CI over seeds": f"[{d['ci_low']:.2f}, {d['ci_high']:.2f}]",
                "95% paired bootstrap over questions": f"[{lo:.2f}, {hi:.2f}]",
                "seeds": d["n"],
            }
        )
    paper = {"cdpo_seq − dpo": {"mean (points)": 5.9}, "cdpo_seq − rpo": {"mean (points)": 1.8}}
    return Table(
        "Paired accuracy differences (percentage points)",
        [
            "comparison",
            "mean (points)",
            "95% t-CI over seeds",
            "95% paired bootstrap over questions",
            "seeds",
        ],
        rows,
        paper,
        note="bootstrap over test questions of the seed-averaged per-question difference",
    )


def data_table(pipe) -> Table:
    s, sel = pipe.samples(), pipe.selection()
    rows = [
        {"quantity": "training questions", "value": len(s["rows"])},
        {"quantity": "sampled trajectories", "value": sum(len(r["correct"]) for r in s["rows"])},
        {"quantity": "share wrong (%)", "value": round(100 * s["wrong_share"], 1)},
        {"quantity": "no extractable answer (counted wrong)", "value": s["malformed"]},
        {"quantity": "positive SFT examples", "value": len(sel["pos"])},
        {"quantity": "negative SFT examples", "value": len(sel["neg"])},
        {"quantity": "DPO pairs", "value": len(sel["pairs"])},
        {"quantity": "pairs dropped by the length filter", "value": sel["dropped_long"]},
    ]
    return Table("Sampled data and selection", ["quantity", "value"], rows)


DET_COLS = (
    "top1",
    "recall@3",
    "auroc",
    "precision@0.5",
    "recall@0.5",
    "precision@0.8",
    "recall@0.8",
)


def detection_tables(det: dict) -> list[Table]:
    if not det.get("n"):
        return []
    rows = [{"score": name, **{c: m[c] for c in DET_COLS}} for name, m in det["scores"].items()]
    t1 = Table(
        f"Critical-token detection on {det['n']} rejected responses (ground truth: first "
        "departure from the canonical solution)",
        ["score", *DET_COLS],
        rows,
        note=f"{det['skipped']} rejected responses without an in-range first error skipped",
    )
    rows = []
    for kind, d in det["by_kind"].items():
        rows.append(
            {
                "first error": kind,
                "n": d["n"],
                "cDPO top1": d["cdpo"]["top1"],
                "random top1": d["random"]["top1"],
                "confidence top1": d["confidence"]["top1"],
                "cDPO AUROC": d["cdpo"]["auroc"],
            }
        )
    t2 = Table("Detection by category of the first error", list(rows[0]), rows)
    return [t1, t2]


def rollout_table(ro: dict) -> list[Table]:
    if not ro.get("found"):
        return []
    ks = ro["ks"]
    rows = [
        {
            "prefix": "with the critical token",
            **{f"pass@{k}": 100 * v for k, v in zip(ks, ro["pass_with"], strict=True)},
        },
        {
            "prefix": "critical token replaced",
            **{f"pass@{k}": 100 * v for k, v in zip(ks, ro["pass_without"], strict=True)},
        },
    ]
    paper = {"critical token replaced": {"pass@1": 29.9}}  # spec 1.9, GSM8K
    t = Table(
        f"Rollouts (%): {ro['found']} of {ro['n']} wrong trajectories have a critical token",
        ["prefix", *[f"pass@{k}" for k in ks]],
        rows,
        paper,
        note=f"rollout-critical = ground-truth first error for {100 * ro['match_truth']:.0f}%; "
        f"= CE arg-min for {100 * ro['match_ce']:.0f}%; CE arg-min = ground truth for "
        f"{100 * ro['ce_match_truth']:.0f}% of all rollout trajectories",
    )
    return [t]


def figures(pipe, results: dict, ro: dict, prefix: str = "cdpo") -> list[Figure]:
    figs = []
    if ro.get("found"):
        figs.append(
            Figure(
                "pass@k at the critical token",
                f"{prefix}_pass_k.png",
                ro["ks"],
                {
                    "kept": [100 * v for v in ro["pass_with"]],
                    "replaced": [100 * v for v in ro["pass_without"]],
                },
                xlabel="k",
                ylabel="pass@k (%)",
                logx=True,
            )
        )
    series = {}
    for method in ("dpo", "rpo", "cdpo_seq", "cdpo_code"):
        hs = []
        for seed in pipe.cfg.seeds:
            path = Path(pipe.dir) / "pref" / f"{method}-s{seed}.history.json"
            if path.exists():
                h = json.loads(path.read_text())
                hs.append(np.subtract(h["chosen"], h["rejected"]))
        if hs and len(hs[0]):
            n = min(len(h) for h in hs)
            arr = np.stack([h[:n] for h in hs])
            series[method] = {"mean": arr.mean(0).tolist(), "std": arr.std(0).tolist()}
    if series:
        n = min(len(v["mean"]) for v in series.values())
        series = {k: {"mean": v["mean"][:n], "std": v["std"][:n]} for k, v in series.items()}
        figs.append(
            Figure(
                "chosen − rejected log-prob during training",
                f"{prefix}_margin.png",
                list(range(1, n + 1)),
                series,
                xlabel="step",
                ylabel="log p(chosen) − log p(rejected)",
            )
        )
    return figs


def headline(results: dict, det: dict) -> str:
    def cell(m):
        v = [100 * r["accuracy"] for r in results[m]]
        return f"{np.mean(v):.1f} ± {np.std(v, ddof=1) if len(v) > 1 else 0:.1f}"

    names = {
        "base": "base",
        "sft": "SFT",
        "dpo": "DPO",
        "rpo": "RPO",
        "cdpo_seq": "cDPO (paper form)",
        "cdpo_code": "cDPO (code form)",
        "cdpo_shuffled": "cDPO weights shuffled (control)",
    }
    # Only the methods this run trained: an ablation record names just its own rows.
    parts = [f"{label} {cell(m)}" for m, label in names.items() if results.get(m)]
    text = "greedy accuracy: " + ", ".join(parts)
    if det.get("n"):
        top1 = det["scores"]["cdpo weight 1-s (gamma=1)"]["top1"]
        text += f"; contrastive estimation puts its top weight on the first error {100 * top1:.0f}%"
    return text


def reproduce(
    cfg,
    out: Path,
    results_path: Path | None,
    device: str,
    dist=None,
    data_root=None,
    analyses: bool = True,
    experiment: str | None = None,
):
    """Run every stage (resuming finished ones) and write the result record."""
    started = time.time()
    pipe = Pipeline(cfg, out, dist, data_root)
    results = pipe.run_methods()
    det = (
        pipe._json_stage("detection", lambda: analysis.detection(pipe))
        if cfg.task == "arith" and analyses
        else {}
    )
    ro = (
        pipe._json_stage("rollouts", lambda: analysis.rollouts(pipe))
        if cfg.task == "arith" and analyses
        else {}
    )
    if dist is not None and not dist.is_main:
        return None
    tables = [
        accuracy_table(results),
        difference_table(results),
        data_table(pipe),
        *detection_tables(det),
        *rollout_table(ro),
    ]
    record_path = results_path or out / "record.json"
    return write_record(
        record_path,
        package="cdpo",
        experiment=experiment or f"reproduce-{cfg.task}",
        config=config_to_dict(cfg),
        seeds=list(cfg.seeds),
        tables=tables,
        figures=figures(pipe, results, ro, f"cdpo_{experiment}" if experiment else "cdpo"),
        device=device,
        started=started,
        extra={"run_dir": str(out), "headline": headline(results, det)},
    )
