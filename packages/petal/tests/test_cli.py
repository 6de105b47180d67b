"""The command line: help, the quick reproduction, report, train/adapt round trip, bench."""

import json

import pytest

from petal.cli import _parser, main
from petal.reproduce import QUICK, ROWS, quick_config, reproduce


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for cmd in ("train", "swag", "adapt", "reproduce", "report", "bench"):
        assert cmd in out
    help_text = _parser()._subparsers._group_actions[0].choices["adapt"].format_help()
    for option in ("--spw", "--perc", "--rst", "--ap", "--ema", "--n-aug", "--profile"):
        assert option in help_text


def test_bad_config_is_refused_before_work(capsys):
    assert main(["adapt", "--perc", "1.5"]) == 2
    assert "perc must lie in [0, 1]" in capsys.readouterr().err


def test_quick_reproduce_invariants(tmp_path):
    cfg = quick_config()
    record = reproduce(cfg, tmp_path, quick=True)
    raw = record["extra"]["raw"]["standard"]["digits"]
    assert set(raw) == set(ROWS)
    for runs in raw.values():
        assert len(runs) == len(QUICK.seeds)
        for run in runs:
            assert len(run["domains"]) == 15
            for m in run["metrics"]:
                assert 0 <= m["error"] <= 1 and 0 <= m["brier"] <= 2 and m["nll"] > 0
    # Source and BN adapt do not learn, so the orders experiment cannot change them; the
    # CoTTA runs of the random orders see the same domains as the standard stream
    orders = record["extra"]["orders"]
    assert len(orders) == QUICK.n_orders and sorted(orders[0]) == sorted(raw["CoTTA"][0]["domains"])
    # The tables and the figure were rendered from the record
    titles = [t["title"] for t in record["tables"]]
    assert any("paired differences" in t for t in titles)
    assert (tmp_path / "stream_error_digits.png").is_file()
    saved = json.loads((tmp_path / "quick.json").read_text())
    assert saved["extra"]["headline"] == record["extra"]["headline"]
    assert saved["config"]["adapt"]["spw"] == cfg.spw

    readme = tmp_path / "README.md"
    readme.write_text("x\n<!-- results:start -->\nold\n<!-- results:end -->\ny\n")
    assert main(["report", "--record", str(tmp_path / "quick.json"), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "old" not in text and "PETAL-FIM" in text and text.endswith("y\n")


def test_train_then_adapt_round_trip(tmp_path, capsys):
    out = tmp_path / "src"
    assert (
        main(
            [
                "train",
                "--dataset",
                "digits",
                "--steps",
                "20",
                "--widths",
                "4",
                "8",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert (out / "model" / "model.safetensors").is_file()
    assert (out / "swag_var.safetensors").is_file()
    assert (
        main(
            [
                "adapt",
                "--method",
                "petal-fim",
                "--source",
                str(out),
                "--n-aug",
                "2",
                "--batch-size",
                "16",
                "--n-test",
                "32",
                "--out",
                str(tmp_path / "run"),
            ]
        )
        == 0
    )
    assert "mean" in capsys.readouterr().out
    assert (tmp_path / "run" / "state" / "meta.json").is_file()


def test_bench_prints_ratios():
    from petal.bench import bench

    text = bench(batches=2, batch_size=8, widths=(4, 8))
    assert "(baseline)" in text and "PETAL-FIM / CoTTA" in text


def test_quick_ablation(tmp_path):
    from petal.ablation import LAMBDAS, ablate

    record = ablate(tmp_path, quick=True)
    lam, trig = record["tables"]
    assert len(lam["rows"]) == len(LAMBDAS) and len(trig["rows"]) == 6
    # p_th = 0.92 is above a barely trained model's confidence: the trigger fires every batch
    assert all(r["augmented batches %"] == 100.0 for r in trig["rows"][3:])
