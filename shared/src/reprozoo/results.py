"""Result records and everything rendered from them: Markdown tables, figures, reports.

A reproduction writes one JSON record per experiment under `results/<package>/`. The record
holds the config, the seeds, the tables (each cell either a plain value or the per-seed values
with their mean ± std), the data of its figures, and the provenance of the run (git commit,
library versions, device, wall time, peak memory). Tables and figures in READMEs and in
`REPRODUCTION.md` are rendered from these records, never typed by hand.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from reprozoo.metrics import mean_std
from reprozoo.runtime import library_versions

__all__ = [
    "Figure",
    "Table",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "git_commit",
    "library_versions",
    "peak_rss_mb",
    "render_figure",
    "render_record",
    "render_report",
    "render_table",
    "summarize",
    "update_readme_section",
    "write_record",
]


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to a temporary file beside `path`, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """A table cell over seeds: the values with their mean and sample standard deviation."""
    values = [float(v) for v in values]
    mean, std = mean_std(values)
    return {"mean": mean, "std": std, "n": len(values), "values": values}


@dataclass
class Table:
    """A result table. `rows` map column → str, number or `summarize(...)` cell.

    `paper` maps a row label (the first column's value) to `{column: value}` as published;
    those values are shown in a separate column after ours.
    """

    title: str
    columns: list[str]
    rows: list[dict[str, Any]]
    paper: dict[str, dict[str, Any]] | None = None
    note: str = ""


@dataclass
class Figure:
    """Data of a figure, rendered to `file` (a PNG beside the record) by `render_figure`.

    `series` maps a name to y values, or to `{"mean": [...], "std": [...]}` (a shaded band).
    `kind="image"` means `file` is a PNG the package made itself (a sample grid, say).
    """

    title: str
    file: str
    x: list[float] = field(default_factory=list)
    series: dict[str, Any] = field(default_factory=dict)
    xlabel: str = ""
    ylabel: str = ""
    kind: str = "line"
    logx: bool = False
    logy: bool = False


def peak_rss_mb() -> float:
    """Peak resident memory of this process and its finished children, in MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / 1024**2
    return max(own, children) * scale


def git_commit(cwd: str | os.PathLike | None = None) -> str | None:
    """The current commit (with `+dirty` when the tree has changes), or None outside git."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return sha + ("+dirty" if dirty else "")


def write_record(
    path: str | os.PathLike,
    *,
    package: str,
    experiment: str,
    config: dict[str, Any],
    seeds: Sequence[int],
    tables: Sequence[Table],
    figures: Sequence[Figure] = (),
    device: str,
    started: float,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the JSON record of one experiment and render its figures beside it."""
    path = Path(path)
    record = {
        "package": package,
        "experiment": experiment,
        "config": config,
        "seeds": list(seeds),
        "tables": [asdict(t) for t in tables],
        "figures": [asdict(f) for f in figures],
        "provenance": {
            "git_commit": git_commit(),
            "versions": library_versions([package]),
            "device": str(device),
            "wall_time_s": round(time.time() - started, 2),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
        "extra": extra or {},
    }
    for fig in record["figures"]:
        if fig["kind"] != "image":
            render_figure(fig, path.parent / fig["file"])
    atomic_write_json(path, record)
    return record


def _format_value(value: Any, digits: int = 3) -> str:
    if isinstance(value, dict) and "mean" in value:
        if value.get("n", 1) > 1:
            return f"{value['mean']:.{digits}f} ± {value['std']:.{digits}f}"
        return f"{value['mean']:.{digits}f}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return "" if value is None else str(value)


def render_table(table: dict[str, Any] | Table, digits: int = 3) -> str:
    """A Markdown table; paper values (where known) in a column after each of ours."""
    t = asdict(table) if isinstance(table, Table) else table
    paper = t.get("paper") or {}
    paper_cols = {c for row in paper.values() for c in row}
    header = []
    for col in t["columns"]:
        header.append(col)
        if col in paper_cols:
            header.append(f"{col} (paper)")
    lines = [f"**{t['title']}**", "", "| " + " | ".join(header) + " |"]
    lines.append("|" + "---|" * len(header))
    for row in t["rows"]:
        label = str(row.get(t["columns"][0], ""))
        cells = []
        for col in t["columns"]:
            cells.append(_format_value(row.get(col), digits))
            if col in paper_cols:
                cells.append(_format_value(paper.get(label, {}).get(col), digits))
        lines.append("| " + " | ".join(cells) + " |")
    if t.get("note"):
        lines += ["", t["note"]]
    return "\n".join(lines) + "\n"


def render_figure(fig: dict[str, Any], path: str | os.PathLike) -> Path:
    """Draw a line or bar figure from its record data into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig_obj, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    x = fig["x"]
    for i, (name, ys) in enumerate(fig["series"].items()):
        mean = ys["mean"] if isinstance(ys, dict) else ys
        if fig["kind"] == "bar":
            width = 0.8 / max(len(fig["series"]), 1)
            pos = [j + i * width for j in range(len(mean))]
            ax.bar(
                pos, mean, width, label=name, yerr=ys.get("std") if isinstance(ys, dict) else None
            )
            ax.set_xticks([j + 0.4 - width / 2 for j in range(len(mean))], [str(v) for v in x])
        else:
            xs = x if x else list(range(len(mean)))
            ax.plot(xs, mean, label=name, marker="o" if len(mean) <= 20 else None)
            if isinstance(ys, dict) and "std" in ys:
                lo = [m - s for m, s in zip(mean, ys["std"], strict=True)]
                hi = [m + s for m, s in zip(mean, ys["std"], strict=True)]
                ax.fill_between(xs, lo, hi, alpha=0.2)
    if fig.get("logx"):
        ax.set_xscale("log")
    if fig.get("logy"):
        ax.set_yscale("log")
    ax.set(title=fig["title"], xlabel=fig.get("xlabel", ""), ylabel=fig.get("ylabel", ""))
    ax.grid(alpha=0.3)
    if fig["series"]:
        ax.legend(fontsize=8)
    fig_obj.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig_obj.savefig(tmp)
    plt.close(fig_obj)
    os.replace(tmp, path)
    return path


def render_record(record: dict[str, Any], figure_prefix: str = "") -> str:
    """Markdown for one record: its tables, figure links and a provenance line."""
    prov = record.get("provenance", {})
    seeds = ", ".join(str(s) for s in record.get("seeds", []))
    parts = [f"### {record['package']}: {record['experiment']}", ""]
    parts += [render_table(t) for t in record["tables"]]
    for fig in record.get("figures", []):
        parts.append(f"![{fig['title']}]({figure_prefix}{fig['file']})\n")
    parts.append(
        f"_seeds {seeds}; {prov.get('device', '?')}; wall time {prov.get('wall_time_s', '?')} s; "
        f"peak RSS {prov.get('peak_rss_mb', '?')} MB; commit {prov.get('git_commit', '?')}_\n"
    )
    return "\n".join(parts)


def render_report(
    results_root: str | os.PathLike = "results", out: str | os.PathLike = "REPRODUCTION.md"
) -> Path:
    """Render every record under `results_root/<package>/*.json` into one Markdown file."""
    root, out = Path(results_root), Path(out)
    sections = [
        "# Reproduction report",
        "",
        "Generated from the result records by `nox -s report`.",
        "",
    ]
    records = sorted(root.glob("*/*.json"))
    if not records:
        sections.append(f'No result records under {root}/ yet: run `nox -s "reproduce(<paper>)"`.')
    for path in records:
        record = json.loads(path.read_text())
        prefix = os.path.relpath(path.parent, out.parent) + "/"
        sections.append(render_record(record, figure_prefix=prefix))
    return atomic_write_text(out, "\n".join(sections) + "\n")


def render_package_table(
    results_root: str | os.PathLike = "results", packages_root: str | os.PathLike = "packages"
) -> str:
    """The workspace README's package table: paper, status and headline from the records.

    A package's headline is the `extra["headline"]` sentence its reproduction computed and
    stored in a record; a package without records is listed as not yet reproduced.
    """
    import tomllib

    lines = [
        "| package | paper | status | headline on the embedded default |",
        "|---|---|---|---|",
    ]
    for folder in sorted(Path(packages_root).iterdir()):
        if not (folder / "pyproject.toml").is_file():
            continue
        project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
        records = [
            json.loads(p.read_text())
            for p in sorted(Path(results_root, folder.name).glob("*.json"))
        ]
        headlines = [
            f"*{r['experiment']}*: {r['extra']['headline']}"
            for r in records
            if r.get("extra", {}).get("headline")
        ]
        status = "reproduced (embedded default)" if records else "no results yet"
        link = f"[{folder.name}]({folder.as_posix()}/README.md)"
        paper = project.get("description", "")
        summary = "<br>".join(headlines) or "tables in the package README"
        lines.append(f"| {link} | {paper} | {status} | {summary} |")
    return "\n".join(lines)


def update_readme_section(readme: str | os.PathLike, markdown: str, name: str = "results") -> Path:
    """Replace the text between `<!-- name:start -->` and `<!-- name:end -->` in a file."""
    readme = Path(readme)
    text = readme.read_text()
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start not in text or end not in text:
        raise ValueError(f"{readme} has no '{start}' ... '{end}' markers to fill in")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return atomic_write_text(readme, f"{head}{start}\n{markdown.strip()}\n{end}{tail}")


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m reprozoo.results`: render every result record into one Markdown report."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m reprozoo.results",
        description="Render results/<package>/*.json records into a Markdown report.",
    )
    parser.add_argument("--results", default="results", help="folder of result records")
    parser.add_argument("--out", default="REPRODUCTION.md", help="Markdown file to write")
    parser.add_argument(
        "--readme",
        default=None,
        help="also regenerate the package table between <!-- packages:start/end --> in this file",
    )
    parser.add_argument("--packages", default="packages", help="folder of the paper packages")
    args = parser.parse_args(argv)
    print(render_report(args.results, args.out))
    if args.readme:
        table = render_package_table(args.results, args.packages)
        print(update_readme_section(args.readme, table, name="packages"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
