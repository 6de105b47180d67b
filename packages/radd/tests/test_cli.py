"""The command line end to end: quick reproduction, report, train/eval/sample, bench, errors."""

import json

import pytest

from radd.cli import main


@pytest.fixture(scope="module")
def quick_record(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce")
    assert main(["reproduce", "--quick", "--out", str(out)]) == 0
    return out, json.loads((out / "reproduce-quick.json").read_text())


def _table(record, title_start):
    return next(t for t in record["tables"] if t["title"].startswith(title_start))


def test_quick_reproduction_invariants(quick_record):
    _, record = quick_record
    extra = record["extra"]
    # Cached and uncached samplers return the same samples; NFE follows n (1 - (1 - 1/n)^L).
    speed = _table(record, "Cached vs uncached")
    assert all(row["identical samples"] == "yes" for row in speed["rows"])
    for row in speed["rows"]:
        measured = row["NFE cached (measured)"]["mean"]
        assert abs(measured - row["E-NFE n(1-(1-1/n)^L)"]) < 0.3 * row["steps"]
        assert measured <= row["steps"]
    # Every bound sits above the exact NLL of the Markov corpus.
    exact = extra["markov_exact_nll_per_token"]
    for name in ("t_dse", "t_dce", "lambda_dce", "ao", "sedd"):
        assert min(extra["markov"][name]) > exact
    # DSE equals t-DCE pathwise for RADD; estimators agree within Monte-Carlo error.
    est = extra["estimators"]
    for a, b in zip(est["t_dse"], est["t_dce"], strict=True):
        assert a["nats_per_seq"] == pytest.approx(b["nats_per_seq"], rel=1e-6)
    estimators = _table(record, "Estimator equivalence")
    for row in estimators["rows"]:
        assert all(abs(z) < 5 for z in row["difference to lambda_dce (MC s.e.)"]["values"])
    assert all(abs(z) < 5 for zs in extra["ao"]["z"].values() for z in zs)


def test_report_renders_the_record_into_a_readme(quick_record, tmp_path):
    out, _ = quick_record
    (out / "reproduce.json").write_text((out / "reproduce-quick.json").read_text())
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- results:start -->\n<!-- results:end -->\n")
    assert main(["report", "--results", str(out), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "NLL bound on the Markov corpus" in text and "radd_nfe.png" in text


def test_train_eval_sample_and_infill(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["--profile", "quick", "--steps", "3", "--out", str(run)]
    assert main(["train", *args]) == 0
    assert (run / "model" / "model.safetensors").exists()
    assert (
        main(
            [
                "eval",
                "--model",
                str(run / "model"),
                "--profile",
                "quick",
                "--draws",
                "2",
                "--sequences",
                "4",
            ]
        )
        == 0
    )
    assert '"bits_per_token"' in capsys.readouterr().out
    assert (
        main(
            [
                "sample",
                "--model",
                str(run / "model"),
                "--steps",
                "8",
                "--n",
                "2",
                "--prefix",
                "def ",
                "--suffix",
                "end",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    samples = [line for line in out.splitlines() if line.startswith("def ")]
    assert len(samples) == 2 and "batched network calls" in out


def test_bench_prints_ratios(capsys):
    assert (
        main(["bench", "--model-size", "tiny", "--length", "16", "--steps", "32", "--batch", "2"])
        == 0
    )
    out = capsys.readouterr().out
    assert "baseline" in out and "NFE ratio" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--loss", "mse"], "loss"),
        (["train", "--length", "-4"], "length"),
        (["reproduce", "--quick", "--objectives", "t_dce"], "lambda_dce"),
        (["eval", "--model", "/nonexistent/model", "--draws", "1"], "draws"),
    ],
)
def test_bad_arguments_are_refused_with_a_message(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_headline_reads_the_bound_and_sampling_tables():
    from radd.reproduce import headline
    from reprozoo.results import Table, summarize

    markov = Table(
        "m",
        ["objective", "bound (nats/token)"],
        [
            {"objective": "RADD ao", "bound (nats/token)": summarize([1.6, 1.5])},
            {"objective": "oracle q (exact conditionals)", "bound (nats/token)": 1.2},
            {"objective": "exact NLL", "bound (nats/token)": 1.4},
        ],
    )
    sampling = Table(
        "s",
        ["steps", "NFE ratio uncached/cached", "wall-clock speed-up"],
        [
            {
                "steps": 4096,
                "NFE ratio uncached/cached": 64.0,
                "wall-clock speed-up": summarize([20.0]),
            },
        ],
    )
    text = headline(markov, sampling)
    assert "every bound sits at or above the exact NLL 1.400" in text
    assert "best RADD ao 1.550" in text and "NFE ratio 64.0×" in text and "20.0×" in text
