"""The paper-scale code path on tiny fabricated files in the real layouts."""

import argparse
import pickle

import numpy as np
import pytest
import torch

from petal.architectures import ResNeXt29AugMix, WideResNet, load_classifier
from petal.cli import main
from petal.config import profile
from petal.corruptions import CORRUPTIONS
from petal.paper import adapt_paper, load_cifar_c, load_imagenet_c, swag_paper
from reprozoo.checkpoint import CheckpointError
from reprozoo.data import DataNotFoundError


def _fabricate_cifar(root, n=8):
    rng = np.random.default_rng(0)
    folder = root / "CIFAR-10-C"
    folder.mkdir(parents=True)
    labels = np.tile(np.arange(n) % 10, 5).astype(np.uint8)
    np.save(folder / "labels.npy", labels)
    for c in CORRUPTIONS:
        np.save(folder / f"{c}.npy", rng.integers(0, 256, (5 * n, 32, 32, 3), dtype=np.uint8))
    train = root / "cifar-10-batches-py"
    train.mkdir()
    for i in range(1, 6):
        batch = {
            b"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8),
            b"labels": list(rng.integers(0, 10, 20)),
        }
        with open(train / f"data_batch_{i}", "wb") as fh:
            pickle.dump(batch, fh)


def test_cifar_c_severity_blocks(tmp_path):
    _fabricate_cifar(tmp_path)
    raw = np.load(tmp_path / "CIFAR-10-C" / "fog.npy")
    dom = load_cifar_c(tmp_path, "cifar10", "fog", 3, n=5)
    assert dom.x.shape == (5, 3, 32, 32)
    assert torch.equal(dom.x, torch.from_numpy(raw[16:21]).permute(0, 3, 1, 2).float() / 255)


def test_missing_data_names_path_layout_and_source(tmp_path):
    with pytest.raises(DataNotFoundError) as err:
        load_cifar_c(tmp_path, "cifar10", "fog", 5, n=5)
    msg = str(err.value)
    assert str(tmp_path) in msg and "labels.npy" in msg and "zenodo" in msg
    with pytest.raises(DataNotFoundError, match="ImageNet-C"):
        load_imagenet_c(tmp_path, "fog", 5, n=2)


def test_imagenet_c_folder_layout(tmp_path):
    from PIL import Image

    for c in CORRUPTIONS:
        for wnid in ("n01440764", "n01443537"):
            d = tmp_path / "ImageNet-C" / c / "5" / wnid
            d.mkdir(parents=True)
            Image.new("RGB", (300, 260), (10, 20, 30)).save(d / "a.JPEG")
    dom = load_imagenet_c(tmp_path, "snow", 5, n=2)
    assert dom.x.shape == (2, 3, 224, 224) and dom.y.tolist() == [0, 1]


def test_architectures_shapes_and_checkpoint_loading(tmp_path):
    wrn = WideResNet(10, 1, 10)
    assert wrn(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    full = WideResNet(28, 10, 10)
    assert 36_000_000 < sum(p.numel() for p in full.parameters()) < 37_000_000
    rx = ResNeXt29AugMix(100)
    assert 6_000_000 < sum(p.numel() for p in rx.parameters()) < 7_500_000
    path = tmp_path / "Standard.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in wrn.state_dict().items()}}, path)
    again = load_classifier(WideResNet(10, 1, 10), path)
    assert all(
        torch.equal(a, b)
        for a, b in zip(wrn.state_dict().values(), again.state_dict().values(), strict=False)
    )
    with pytest.raises(CheckpointError, match="RobustBench"):
        load_classifier(wrn, tmp_path / "absent.pt")
    with pytest.raises(CheckpointError, match="does not fit"):
        load_classifier(WideResNet(10, 2, 10), path)


def test_swag_then_adapt_at_paper_scale(tmp_path):
    _fabricate_cifar(tmp_path)
    ckpt = tmp_path / "Standard.pt"
    torch.manual_seed(0)
    torch.save(WideResNet(10, 1, 10).state_dict(), ckpt)
    args = argparse.Namespace(
        dataset="cifar10",
        arch="wrn-10-1",
        model=str(ckpt),
        data_root=str(tmp_path),
        device="cpu",
        seed=0,
        out=str(tmp_path / "swag"),
    )
    swag_paper(args)
    cfg = profile("paper-cifar10", method="petal-fim", batch_size=4, n_aug=2)
    args = argparse.Namespace(
        source=str(tmp_path / "swag"),
        dataset="cifar10",
        data_root=str(tmp_path),
        n_examples=4,
        seed=0,
        device="cpu",
        out=str(tmp_path / "adapt"),
        checkpoint_every=0,
    )
    result = adapt_paper(args, cfg)
    assert result.domains == list(CORRUPTIONS) and len(result.batch_errors) == 15


def test_cli_reports_missing_paper_data_cleanly(tmp_path, capsys):
    code = main(
        [
            "adapt",
            "--scale",
            "paper",
            "--source",
            str(tmp_path / "none"),
            "--data-root",
            str(tmp_path),
        ]
    )
    assert code == 2
    assert "petal swag --scale paper" in capsys.readouterr().err
