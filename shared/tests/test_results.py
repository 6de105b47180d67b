import argparse
import json
import time
from dataclasses import dataclass, field

import pytest

from reprozoo.bench import ratio_table, time_call
from reprozoo.config import ConfigError, add_dataclass_arguments, dataclass_from_args
from reprozoo.results import (
    Figure,
    Table,
    render_report,
    render_table,
    summarize,
    update_readme_section,
    write_record,
)


def test_record_tables_figures_and_report(tmp_path):
    table = Table(
        "Errors",
        ["method", "error"],
        [
            {"method": "a", "error": summarize([0.1, 0.2, 0.3])},
            {"method": "b", "error": 0.5},
        ],
        paper={"a": {"error": 0.15}},
    )
    fig = Figure(
        "curve", "curve.png", x=[1, 2, 3], series={"a": {"mean": [1, 2, 3], "std": [0, 1, 0]}}
    )
    rec = write_record(
        tmp_path / "results" / "pkg" / "exp.json",
        package="pkg",
        experiment="exp",
        config={"k": 1},
        seeds=[0, 1, 2],
        tables=[table],
        figures=[fig],
        device="cpu",
        started=time.time(),
    )
    saved = json.loads((tmp_path / "results" / "pkg" / "exp.json").read_text())
    assert saved["tables"][0]["rows"][0]["error"]["mean"] == pytest.approx(0.2)
    assert rec["provenance"]["peak_rss_mb"] > 0
    assert (tmp_path / "results" / "pkg" / "curve.png").stat().st_size > 1000
    md = render_table(saved["tables"][0])
    assert "| a | 0.200 ± 0.100 | 0.150 |" in md and "error (paper)" in md
    out = render_report(tmp_path / "results", tmp_path / "REPRODUCTION.md")
    assert "pkg: exp" in out.read_text() and "results/pkg/curve.png" in out.read_text()


def test_update_readme_section(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("top\n<!-- results:start -->\nold\n<!-- results:end -->\nbottom\n")
    update_readme_section(readme, "new table")
    assert (
        readme.read_text()
        == "top\n<!-- results:start -->\nnew table\n<!-- results:end -->\nbottom\n"
    )
    with pytest.raises(ValueError, match="markers"):
        update_readme_section(readme, "x", name="other")


@dataclass(frozen=True)
class _Cfg:
    lr: float = field(default=0.1, metadata={"help": "learning rate"})
    steps: int = field(default=10, metadata={"help": "optimiser steps"})
    ema: bool = field(default=True, metadata={"help": "keep EMA weights"})
    sizes: tuple[int, ...] = field(default=(1, 2), metadata={"help": "layer sizes"})

    def __post_init__(self):
        if self.lr <= 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")


def test_dataclass_arguments_round_trip():
    parser = add_dataclass_arguments(argparse.ArgumentParser(), _Cfg)
    assert "learning rate" in parser.format_help()
    args = parser.parse_args(["--steps", "3", "--no-ema", "--sizes", "4", "5"])
    cfg = dataclass_from_args(_Cfg, args, base=_Cfg(lr=0.5))
    assert cfg == _Cfg(lr=0.5, steps=3, ema=False, sizes=(4, 5))
    with pytest.raises(ConfigError, match="lr must be positive"):
        dataclass_from_args(_Cfg, parser.parse_args(["--lr", "-1"]))


def test_bench_ratio_table():
    assert time_call(lambda: None, repeats=3) >= 0
    text = ratio_table({"base": 10.0, "fast": 20.0}, baseline="base", unit="img/s")
    assert "2.000" in text and "(baseline)" in text
    with pytest.raises(ValueError):
        ratio_table({"a": 1.0}, baseline="b", unit="x")


def test_package_table_from_records(tmp_path):
    from reprozoo.results import render_package_table

    for name in ("alpha", "beta"):
        (tmp_path / "packages" / name).mkdir(parents=True)
        (tmp_path / "packages" / name / "pyproject.toml").write_text(
            f'[project]\nname = "{name}"\ndescription = "Paper {name}"\n'
        )
    write_record(
        tmp_path / "results" / "alpha" / "main.json",
        package="alpha",
        experiment="main",
        config={},
        seeds=[0],
        tables=[],
        device="cpu",
        started=time.time(),
        extra={"headline": "error 0.10 vs 0.20"},
    )
    table = render_package_table(tmp_path / "results", tmp_path / "packages")
    assert "| Paper alpha | reproduced (embedded default) | *main*: error 0.10 vs 0.20 |" in table
    assert "| Paper beta | no results yet | tables in the package README |" in table


def test_run_main_turns_user_errors_into_exit_code_2(capsys):
    from reprozoo.cli import run_main
    from reprozoo.data import DataNotFoundError

    def failing(argv):
        raise DataNotFoundError("CIFAR-10-C not found under /nowhere")

    assert run_main(failing, []) == 2
    assert "error: CIFAR-10-C not found under /nowhere" in capsys.readouterr().err
    assert run_main(lambda argv: None, []) == 0
