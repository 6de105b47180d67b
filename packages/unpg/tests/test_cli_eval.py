"""`unpg eval` on tiny fabricated .bin and IJB files, and `unpg reproduce --quick`."""

import io
import json

import numpy as np
import pytest
from PIL import Image

from unpg.cli import main
from unpg.model import IResNet
from unpg.recordio import write_bin


def _png(seed, size=16):
    rgb = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def model_dir(tmp_path):
    IResNet("iresnet-micro", 3, 16, 16).save_pretrained(tmp_path / "model")
    return tmp_path / "model"


def test_eval_bin_and_ijb(tmp_path, model_dir, capsys):
    root = tmp_path / "data"
    (root / "faces_emore").mkdir(parents=True)
    write_bin(root / "faces_emore" / "lfw.bin", [_png(i) for i in range(40)], [True, False] * 10)
    meta, aligned = root / "IJBC" / "meta", root / "IJBC" / "aligned"
    meta.mkdir(parents=True)
    aligned.mkdir()
    rows = []
    for i in range(12):
        (aligned / f"{i}.png").write_bytes(_png(100 + i))
        rows.append(f"{i}.png {i // 3} {i // 2}")
    (meta / "ijbc_face_tid_mid.txt").write_text("\n".join(rows) + "\n")
    (meta / "ijbc_template_pair_label.txt").write_text("0 1 1\n0 2 0\n1 3 0\n2 3 1\n")
    argv = ["eval", "--model", str(model_dir), "--sets", "lfw", "ijbc", "--flip",
            "--data-root", str(root)]  # fmt: skip
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert 0 <= out["lfw"]["acc10"] <= 1 and 0.5 <= out["lfw"]["acc_best_th"] <= 1
    assert set(out["ijbc"]) >= {"tar@1e-04", "tar_nearest@1e-04"}


def test_eval_missing_data_names_path_and_layout(tmp_path, model_dir, capsys):
    code = main(["eval", "--model", str(model_dir), "--sets", "cfp_fp", "--data-root",
                 str(tmp_path / "nowhere")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "nowhere" in err and "faces_emore/cfp_fp.bin" in err


def test_reproduce_quick_record_and_report(tmp_path, capsys):
    results = tmp_path / "results"
    argv = ["reproduce", "--quick", "--out", str(tmp_path / "work"), "--results", str(results)]
    assert main(argv) == 0
    record = json.loads((results / "synthid_quick.json").read_text())
    assert "ArcFace+UNPG − ArcFace" in capsys.readouterr().out
    runs = record["extra"]["runs"]
    assert len(runs) == 4 and (results / "synthid_quick_roc.png").exists()
    for metrics in runs.values():
        assert 1 >= metrics["tar@1e-03"] >= metrics["tar@1e-04"] >= metrics["tar@1e-05"] >= 0
        assert 0 <= metrics["acc10"] <= 1 and 0 <= metrics["wdfs_rate"] <= 1
    table = record["tables"][0]
    assert [r["method"] for r in table["rows"]] == ["ArcFace", "ArcFace+UNPG"]
    assert table["rows"][0]["TAR@1e-4"]["n"] == 2
    # A second call reuses the cached runs and gives the same numbers.
    assert main(argv) == 0
    again = json.loads((results / "synthid_quick.json").read_text())
    assert again["extra"]["runs"] == runs
    readme = tmp_path / "README.md"
    readme.write_text("x\n<!-- results:start -->\nSTALE\n<!-- results:end -->\n")
    (results / "synthid.json").write_text(json.dumps(record))
    assert main(["report", "--results", str(results), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "SynthID open-set verification" in text and "STALE" not in text


def test_bench_prints_ratios(capsys):
    assert main(["bench", "--batch-size", "16", "--classes", "20", "--steps", "1"]) == 0
    out = capsys.readouterr().out
    assert "ArcFace+UNPG" in out and "(baseline)" in out and "pairs/s" in out
