"""The command line: quick reproduction, README report, bad input."""

import json

import pytest

from perpneg.cli import main


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for cmd in ("reproduce", "report", "train", "eval", "sample", "bench"):
        assert cmd in text


def test_quick_reproduction_and_report(tmp_path, capsys):
    out = tmp_path / "results"
    assert main(["reproduce", "--quick", "--out", str(out), "--work", str(tmp_path / "w")]) == 0
    analytic = json.loads((out / "analytic.json").read_text())
    a1 = {r["method"]: r for r in analytic["tables"][0]["rows"]}
    pn, cn = a1["Perp-Neg"], a1["composable NOT (Liu et al.)"]
    # Exact scores: Perp-Neg keeps the main concept; composable NOT at w = 1.5 loses it.
    assert pn["keep boy∧sunglasses"]["mean"] > 0.95 > 0.5 > cn["keep boy∧sunglasses"]["mean"]
    for table in analytic["tables"]:
        for row in table["rows"]:
            cells = [v for v in row.values() if isinstance(v, dict)]
            assert all(0 <= c["mean"] <= 1 and c["n"] == 3 for c in cells)
    assert (out / "analytic_sweep_success.png").is_file()
    trained = json.loads((out / "trained.json").read_text())
    assert trained["provenance"]["wall_time_s"] > 0
    b1, b2 = trained["tables"][0]["rows"], trained["tables"][1]["rows"]
    assert [r["method"].split(" ")[0] for r in b1] == ["CFG", "SD", "composable", "Perp-Neg"]
    for r in b1:
        both = min(r["keep square∧hat"]["mean"], r["no red brim"]["mean"])
        assert r["success"]["mean"] <= both + 1e-12 and r["success"]["n"] == 3
    assert len(b2) == 2 * 4
    assert all(0 <= r["view success"]["mean"] <= r["square kept"]["mean"] for r in b2)
    assert (out / "trained_removal_grid.png").is_file()

    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- results:start -->\nold\n<!-- results:end -->\ntail\n")
    assert main(["report", "--results", str(out), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "A1 concept removal" in text and "old" not in text and text.endswith("tail\n")


def test_bad_input_is_refused(tmp_path, capsys):
    code = main(
        [
            "sample",
            "--toy-model",
            str(tmp_path),
            "--prompt",
            "square",
            "--negative",
            "hat",
            "--negative",
            "red",
        ]
    )
    assert code == 2 and "one weight" in capsys.readouterr().err
    code = main(["sample", "--sd-model", str(tmp_path), "--prompt", "a lion"])
    assert code == 2 and "model_index.json" in capsys.readouterr().err
    code = main(["sample", "--sd-model", str(tmp_path), "--prompt", "a", "--scheduler", "heun9"])
    assert code == 2 and "unknown scheduler" in capsys.readouterr().err
    code = main(["report", "--results", str(tmp_path / "none")])
    assert code == 2
    code = main(["train", "--lr", "5", "--out", str(tmp_path)])
    assert code == 2 and "lr" in capsys.readouterr().err
