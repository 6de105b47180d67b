import numpy as np
import pytest
import torch

from reprozoo.data import (
    DataNotFoundError,
    load_digits_images,
    pydoc_text,
    require_layout,
    resolve_data_root,
    split_indices,
    stratified_split,
)


def test_data_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("REPROZOO_DATA", str(tmp_path / "env"))
    assert resolve_data_root(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_root() == tmp_path / "env"
    monkeypatch.delenv("REPROZOO_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert resolve_data_root() == tmp_path / "cache" / "reprozoo"


def test_require_layout_names_path_files_and_source(tmp_path):
    (tmp_path / "CIFAR-10-C").mkdir()
    (tmp_path / "CIFAR-10-C" / "labels.npy").write_bytes(b"")
    with pytest.raises(DataNotFoundError) as err:
        require_layout(
            tmp_path,
            "CIFAR-10-C",
            ["CIFAR-10-C/labels.npy", "CIFAR-10-C/fog.npy"],
            "https://zenodo.org/record/2535967",
        )
    msg = str(err.value)
    assert str(tmp_path) in msg and "fog.npy" in msg and "zenodo" in msg
    assert require_layout(tmp_path, "x", ["CIFAR-10-C/*.npy"], "s") == tmp_path


def test_digits_images_shapes_range_and_determinism():
    x, y = load_digits_images(size=32, channels=3, colorize=True, seed=1)
    assert x.shape == (1797, 3, 32, 32) and x.dtype == torch.float32 and y.shape == (1797,)
    assert x.min() >= 0 and x.max() <= 1
    x2, _ = load_digits_images(size=32, channels=3, colorize=True, seed=1)
    assert torch.equal(x, x2)
    g, _ = load_digits_images(size=8, channels=1)
    assert g.shape == (1797, 1, 8, 8)
    assert set(y.tolist()) == set(range(10))


def test_splits_are_deterministic_disjoint_and_stratified():
    labels = np.repeat(np.arange(4), 50)
    parts = stratified_split(labels, [0.6, 0.4], seed=3)
    assert sum(len(p) for p in parts) == 200
    assert not set(parts[0]) & set(parts[1])
    assert all((labels[parts[0]] == c).sum() == 30 for c in range(4))
    again = stratified_split(labels, [0.6, 0.4], 3)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))
    a, b, c = split_indices(10, [0.5, 0.3, 0.2], seed=0)
    assert (len(a), len(b), len(c)) == (5, 3, 2)
    with pytest.raises(ValueError):
        split_indices(10, [0.5, 0.6], seed=0)


def test_pydoc_text_is_substantial_and_stable():
    text = pydoc_text()
    assert len(text) > 200_000 and text == pydoc_text()
