"""The command line: help texts, clean errors, one subcommand end to end."""

import pytest

from cdpo.cli import build_parser, main
from cdpo.config import CdpoConfig, profile
from reprozoo.config import ConfigError


@pytest.mark.parametrize("command", ["reproduce", "train", "eval", "sample", "report", "bench"])
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: cdpo" in out
    if command in ("reproduce", "train"):
        assert "--gamma" in out and "contrast strength" in out and "--profile" in out


def test_bad_config_is_rejected_before_any_work():
    with pytest.raises(ConfigError, match="beta"):
        CdpoConfig(beta=0)
    with pytest.raises(ConfigError, match="unknown methods"):
        CdpoConfig(methods=("dpo", "ipo"))
    assert profile("paper").pref_lr == 4e-5 and profile("paper").n_samples == 64


def test_cli_errors_are_clean(tmp_path, capsys):
    assert main(["train", "--beta", "-1", "--out", str(tmp_path)]) == 2
    assert "beta must be > 0" in capsys.readouterr().err
    code = main(
        [
            "train",
            "--profile",
            "paper",
            "--data-root",
            str(tmp_path / "none"),
            "--model",
            str(tmp_path / "m"),
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "gsm8k/train.jsonl" in err and str(tmp_path / "none") in err


def test_eval_subcommand_on_a_saved_model(tmp_path, capsys):
    from cdpo.model import save_model, tiny_llama
    from cdpo.task import ArithTask

    cfg = profile("quick")
    t = ArithTask(cfg)
    save_model(tiny_llama(cfg, len(t.tok), t.pad_id, t.bos_id, t.eos_id), tmp_path / "m")
    assert (
        main(
            [
                "eval",
                "--profile",
                "quick",
                "--checkpoint",
                str(tmp_path / "m"),
                "--out",
                str(tmp_path),
                "--n-test",
                "8",
            ]
        )
        == 0
    )
    assert '"accuracy"' in capsys.readouterr().out


def test_headline_names_only_the_methods_the_run_trained():
    from cdpo.reproduce import headline

    results = {"base": [{"accuracy": 0.5}], "dpo": [{"accuracy": 0.4}, {"accuracy": 0.6}]}
    text = headline(results, {})
    assert text == "greedy accuracy: base 50.0 ± 0.0, DPO 50.0 ± 14.1"
