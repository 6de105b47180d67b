"""Paper-scale data on fabricated idx files, the command line, bench and the quick reproduction."""

import json

import numpy as np
import pytest
import torch

from dale_langevin.cli import build_parser, main
from dale_langevin.data import IDX_FILES, TORCHVISION_SETS, load_torchvision, write_idx
from reprozoo.data import DataNotFoundError


def fabricate(root, cls_name: str, n_train: int = 12, n_test: int = 6, seed: int = 0):
    """Tiny data set in torchvision's raw layout: <root>/<Class>/raw/*-ubyte."""
    rng = np.random.default_rng(seed)
    raw = root / cls_name / "raw"
    sizes = {"train": n_train, "t10k": n_test}
    for name in IDX_FILES:
        split = name.split("-")[0]
        if "images" in name:
            write_idx(raw / name, rng.integers(0, 256, (sizes[split], 28, 28)))
        else:
            write_idx(raw / name, rng.integers(0, 10, sizes[split]))


@pytest.mark.parametrize("name", sorted(TORCHVISION_SETS))
def test_mnist_family_loads_from_fabricated_idx_files(tmp_path, name):
    fabricate(tmp_path, TORCHVISION_SETS[name][0])
    data = load_torchvision(name, tmp_path)
    assert data.train.shape == (12, 1, 28, 28) and data.test.shape == (6, 1, 28, 28)
    assert float(data.train.min()) >= 0 and float(data.train.max()) <= 1
    assert data.train_labels.dtype == torch.int64


def test_missing_data_names_the_path_layout_and_source(tmp_path):
    with pytest.raises(DataNotFoundError) as err:
        load_torchvision("kmnist", tmp_path)
    text = str(err.value)
    assert str(tmp_path) in text and "KMNIST/raw/train-images-idx3-ubyte" in text
    assert "--download" in text and "rois-codh" in text


def test_cli_trains_the_paper_profile_on_fabricated_mnist(tmp_path, capsys):
    fabricate(tmp_path / "data", "MNIST")
    args = ["train", "--profile", "paper", "--data-root", str(tmp_path / "data")]
    args += ["--width", "8", "--steps", "2", "--levels", "10", "--batch-size", "4"]
    args += ["--out", str(tmp_path / "run"), "--device", "cpu"]
    assert main(args) == 0
    saved = json.loads((tmp_path / "run" / "model" / "dale_config.json").read_text())
    assert saved["arch"] == "ncsn" and saved["weighting"] == "paper"
    assert saved["time_embedding"] == "level" and saved["input_mode"] == "paper"
    out = tmp_path / "samples"
    args = ["sample", "--model", str(tmp_path / "run"), "--data-root", str(tmp_path / "data")]
    assert main([*args, "--n", "3", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    report = json.loads(text[text.index("{") :])
    assert report["min_iterate"] > 0 and (out / "grid.png").is_file()
    args[0] = "eval"
    assert main([*args, "--n", "6", "--sampler", "ums", "--schedule", "paper"]) == 0
    text = capsys.readouterr().out
    scores = json.loads(text[text.index("{") :])
    assert scores["label"] == "ums-paper"
    assert all(np.isfinite(v) for k, v in scores.items() if k != "label")


def test_cli_errors_are_clean(tmp_path, capsys):
    assert main(["train", "--offset", "-1", "--out", str(tmp_path)]) == 2
    assert "offset must be > 0" in capsys.readouterr().err
    assert main(["train", "--dataset", "mnist", "--data-root", str(tmp_path)]) == 2
    assert "MNIST not found" in capsys.readouterr().err
    assert main(["report", "--out", str(tmp_path)]) == 2
    assert "run `dale-langevin reproduce` first" in capsys.readouterr().err


def test_help_documents_every_subcommand_and_option():
    parser = build_parser()
    text = parser.format_help()
    for cmd in ("train", "sample", "eval", "reproduce", "report", "bench"):
        assert cmd in text
    sub = parser._subparsers._group_actions[0].choices["train"].format_help()
    for option in ("--sigma", "--weighting", "--score-param", "--prior", "--download", "--seed"):
        assert option in sub


def test_bench_reports_ratios_against_the_additive_sampler(capsys):
    assert main(["bench", "--batch", "32", "--steps", "5"]) == 0
    out = capsys.readouterr().out
    assert "(baseline)" in out and "DLS (multiplicative, exp)" in out


def test_quick_reproduction_keeps_the_invariants(tmp_path):
    from dale_langevin.reproduce import run_reproduction

    record = run_reproduction(tmp_path, seeds=(0,), quick=True)
    quality, _, compute = record["tables"]
    rows = {r["method"]: r for r in compute["rows"]}

    def val(label, key):
        cell = rows[label][key]
        return cell["mean"] if isinstance(cell, dict) else cell

    # The paper's structural claim: every DLS iterate stays in the positive orthant.
    for label in ("DLS consistent", "DLS paper-tuned", "DLS consistent, per-pixel prior"):
        assert val(label, "min_iterate") > 0 and val(label, "nonpositive") == 0
    # Equal compute: same network size, same training steps and NFE for DLS and VE.
    for key in ("params", "train_steps", "nfe"):
        assert val("DLS consistent", key) == val("VE baseline (additive)", key)
    assert val("UMS paper-tuned", "nfe") == 4 * val("DLS consistent", "nfe")
    for row in quality["rows"]:
        assert np.isfinite(row["fd"]["mean"]) and row["fd"]["mean"] >= 0
    assert (tmp_path / "digits_quick.json").is_file()
    assert (tmp_path / "digits_quick_samples_dls_consistent.png").is_file()


def test_headline_counts_non_positive_iterates_and_compares_fd():
    from dale_langevin.reproduce import headline

    per_seed = {
        "DLS consistent": [{"min_iterate": 0.5, "nonpositive": 0, "fd": 2.0}] * 2,
        "VE baseline (additive)": [{"min_iterate": -3.0, "nonpositive": 9, "fd": 1.0}] * 2,
    }
    text = headline(per_seed)
    assert text.startswith("digits, 2 seeds: 0 non-positive iterates")
    assert "(smallest 0.500)" in text and "2.00 ± 0.00 vs additive VE 1.00 ± 0.00" in text
