"""Tables, figure and headline of the embedded reproduction, computed from stream results."""

from __future__ import annotations

from reprozoo.metrics import paired_difference
from reprozoo.results import Figure, Table, summarize

SHORT = {
    "gaussian_noise": "gauss", "shot_noise": "shot", "impulse_noise": "impul",
    "defocus_blur": "defoc", "glass_blur": "glass", "motion_blur": "motn", "zoom_blur": "zoom",
    "snow": "snow", "frost": "frost", "fog": "fog", "brightness": "brit", "contrast": "contr",
    "elastic_transform": "elast", "pixelate": "pixel", "jpeg_compression": "jpeg",
}  # fmt: skip
BASELINE = "CoTTA"
CONTROL = "CoTTA (SWAG-mean start)"


def _means(results, key: str, scale: float = 1.0) -> list[float]:
    return [scale * r.mean(key) for r in results]


def _diff_cell(a: list[float], b: list[float]) -> str:
    if len(a) < 2:
        return f"{a[0] - b[0]:+.3f} (n=1)"
    d = paired_difference(a, b)
    return f"{d['mean']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]"


def _diff_rows(rows: dict[str, list], baseline: str) -> list[dict]:
    out = []
    for name, results in rows.items():
        if name == baseline or name not in rows or not results:
            continue
        base = rows[baseline]
        out.append({
            "Method": f"{name} − {baseline}",
            "Δ error (pts)": _diff_cell(_means(results, "error", 100), _means(base, "error", 100)),
            "Δ NLL": _diff_cell(_means(results, "nll"), _means(base, "nll")),
            "Δ Brier": _diff_cell(_means(results, "brier"), _means(base, "brier")),
            "Δ ECE (pts)": _diff_cell(_means(results, "ece", 100), _means(base, "ece", 100)),
        })  # fmt: skip
    return out


def _summary_row(name: str, results) -> dict:
    return {
        "Method": name,
        "error %": summarize(_means(results, "error", 100)),
        "NLL": summarize(_means(results, "nll")),
        "Brier": summarize(_means(results, "brier")),
        "ECE % (ours)": summarize(_means(results, "ece", 100)),
    }


def build_tables(cfg, standard: dict, orders: dict) -> tuple[list[Table], list[Figure], str]:
    tables: list[Table] = []
    figures: list[Figure] = []
    seeds = len(cfg.seeds)
    for dataset, rows in standard.items():
        domains = rows[BASELINE][0].domains
        cols = (
            ["Method"] + [SHORT[d] for d in domains] + ["error %", "NLL", "Brier", "ECE % (ours)"]
        )
        body = []
        for name, results in rows.items():
            row = {"Method": name}
            for i, d in enumerate(domains):
                row[SHORT[d]] = summarize([100 * r.metrics[i]["error"] for r in results])
            row.update({k: v for k, v in _summary_row(name, results).items() if k != "Method"})
            body.append(row)
        tables.append(Table(
            title=f"{dataset}: continual stream, 15 corruptions at severity {cfg.severity} "
                  f"(standard order), error % per corruption and means; mean ± std over "
                  f"{seeds} seeds",
            columns=cols, rows=body,
            note=("Each seed trains its own source model and SWAG posterior and draws its own "
                  if cfg.source_per_seed else
                  "One source model and SWAG posterior per dataset; each seed draws its own ")
                 + "corruptions, augmentations and restoration masks. Error, NLL and Brier as in "
                 "the official code (Brier summed over classes); ECE (15 bins) is our addition.",
        ))  # fmt: skip
        diff_rows = _diff_rows(rows, BASELINE)
        control = {k: rows[k] for k in ("PETAL-FIM", "PETAL-SRes", CONTROL)}
        diff_rows += _diff_rows(control, CONTROL)
        tables.append(Table(
            title=f"{dataset}: paired differences of the stream means (row − reference), "
                  f"mean [95% t interval] over {seeds} seeds",
            columns=["Method", "Δ error (pts)", "Δ NLL", "Δ Brier", "Δ ECE (pts)"],
            rows=diff_rows,
            note="Negative is better. The last rows compare PETAL with CoTTA started from the "
                 "same SWAG mean (the source-model control).",
        ))  # fmt: skip
        figures.append(Figure(
            title=f"{dataset}: error over the lifelong stream (mean ± std over seeds)",
            file=f"stream_error_{dataset}.png", x=list(range(1, len(domains) + 1)),
            series={name: {"mean": [sum(100 * r.metrics[i]["error"] for r in res) / len(res)
                                    for i in range(len(domains))],
                           "std": [summarize([100 * r.metrics[i]["error"] for r in res])["std"]
                                   for i in range(len(domains))]}
                    for name, res in rows.items() if name != "Source (SWAG mean)"},
            xlabel="domain in the stream (standard order)", ylabel="error %",
        ))  # fmt: skip

    if orders and any(orders.values()):
        n = len(next(iter(orders.values())))
        body = [_summary_row(name, res) for name, res in orders.items()]
        tables.append(Table(
            title=f"{cfg.datasets[0]}: {n} random corruption orders (first seed's source model), "
                  "stream means, mean ± std over orders",
            columns=["Method", "error %", "NLL", "Brier", "ECE % (ours)"], rows=body,
        ))  # fmt: skip
        if BASELINE in orders:
            tables.append(Table(
                title=f"{cfg.datasets[0]}: random orders, paired differences (row − reference) "
                      f"over {n} orders, mean [95% t interval]",
                columns=["Method", "Δ error (pts)", "Δ NLL", "Δ Brier", "Δ ECE (pts)"],
                rows=_diff_rows(orders, BASELINE) + (
                    _diff_rows({k: orders[k] for k in ("PETAL-FIM", CONTROL) if k in orders},
                               CONTROL) if CONTROL in orders else []),
            ))  # fmt: skip
    return tables, figures, _headline(cfg, standard)


def _headline(cfg, standard: dict) -> str:
    dataset = cfg.datasets[0]
    rows = standard[dataset]
    parts = []
    for key, scale, unit in (("error", 100, " pts"), ("nll", 1, ""), ("brier", 1, "")):
        a, b = _means(rows["PETAL-FIM"], key, scale), _means(rows[BASELINE], key, scale)
        mean_a, mean_b = sum(a) / len(a), sum(b) / len(b)
        parts.append(f"{key} {mean_a:.3f} vs {mean_b:.3f} (Δ {_diff_cell(a, b)}{unit})")
    return (
        f"{dataset}, 15 corruptions at severity {cfg.severity}, {len(cfg.seeds)} seeds: "
        f"PETAL-FIM vs CoTTA: " + "; ".join(parts) + "."
    )
