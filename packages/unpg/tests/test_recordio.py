"""RecordIO and .bin readers on tiny files written in the real formats (spec 7.1 item 10)."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from unpg.recordio import (
    MAGIC,
    RecordError,
    RecordFaceSource,
    RecordReader,
    load_bin,
    pack_record,
    unpack_record,
    write_bin,
    write_recordio,
)


def _jpeg(seed, size=16):
    rgb = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")  # lossless, so pixels round-trip exactly
    return buf.getvalue(), rgb


def _ms1m(tmp_path, labels, bad_image_at=None):
    """insightface layout: header record 0, image keys 1..n, identity range records after."""
    n, classes = len(labels), max(labels) + 1
    records, pixels = {}, {}
    a, b = n + 1, n + 1 + classes
    records[0] = pack_record([a, b], b"")
    for k, lab in enumerate(labels, 1):
        data, rgb = _jpeg(k)
        if k == bad_image_at:
            data = b"not an image"
        records[k] = pack_record(lab, data, id1=k)
        pixels[k] = rgb
    for c in range(classes):
        keys = [k for k, lab in enumerate(labels, 1) if lab == c]
        records[a + c] = pack_record([min(keys), max(keys) + 1], b"")
    write_recordio(tmp_path / "train.rec", tmp_path / "train.idx", records)
    return records, pixels


def test_round_trip_including_split_record(tmp_path):
    payload = pack_record(3, b"abc" + MAGIC.to_bytes(4, "little") + b"defgh", id1=7)
    records = {0: pack_record([2.0, 5.0], b""), 1: payload, 2: pack_record(1, b"\x00" * 5)}
    write_recordio(tmp_path / "x.rec", tmp_path / "x.idx", records)
    raw = (tmp_path / "x.rec").read_bytes()
    assert raw.count(MAGIC.to_bytes(4, "little")) == 1 + 2 + 1  # record 1 is split in two
    reader = RecordReader(tmp_path / "x.rec")
    for key, data in records.items():
        assert reader.read(key) == data
    labels, id1, image = unpack_record(reader.read(1))
    assert labels.tolist() == [3.0] and id1 == 7 and image.endswith(b"defgh")
    assert unpack_record(reader.read(0))[0].tolist() == [2.0, 5.0]


def test_face_source_reads_labels_images_and_ranges(tmp_path):
    labels = [0, 0, 1, 2, 2, 2]
    records, pixels = _ms1m(tmp_path, labels)
    src = RecordFaceSource(tmp_path / "train.rec")
    assert len(src) == 6 and src.num_classes == 3
    images, got = src.get(torch.tensor([0, 3, 5]))
    assert got.tolist() == [0, 2, 2]
    expected = torch.from_numpy(pixels[4]).permute(2, 0, 1).float() / 127.5 - 1
    torch.testing.assert_close(images[1], expected)
    ranges = unpack_record(RecordReader(tmp_path / "train.rec").read(7 + 2))[0]
    assert ranges.tolist() == [4.0, 7.0]


def test_bad_index_offset_reported_with_position(tmp_path):
    _ms1m(tmp_path, [0, 1])
    idx = tmp_path / "train.idx"
    lines = idx.read_text().splitlines()
    key, offset = lines[2].split("\t")
    lines[2] = f"{key}\t{int(offset) + 2}"
    idx.write_text("\n".join(lines) + "\n")
    with pytest.raises(RecordError, match=r"bad magic .* at byte \d+ \(record key 2\)"):
        RecordReader(tmp_path / "train.rec").read(2)
    idx.write_text("0\tnotanumber\n")
    with pytest.raises(RecordError, match=r"train.idx:1"):
        RecordReader(tmp_path / "train.rec")


def test_undecodable_image_and_label_out_of_range(tmp_path):
    _ms1m(tmp_path, [0, 1, 1], bad_image_at=2)
    src = RecordFaceSource(tmp_path / "train.rec")
    with pytest.raises(RecordError, match="key 2: the image does not decode"):
        src.get(torch.tensor([1]))
    records = {0: pack_record([3, 5], b""), 1: pack_record(0, b""), 2: pack_record(9, b"")}
    write_recordio(tmp_path / "y.rec", tmp_path / "y.idx", records)
    with pytest.raises(RecordError, match=r"key 2 has label 9, outside \[0, 2\)"):
        RecordFaceSource(tmp_path / "y.rec")


def test_bin_round_trip(tmp_path):
    encoded, pixels = zip(*[_jpeg(i) for i in range(4)], strict=True)
    bins = [np.frombuffer(encoded[0], np.uint8), *encoded[1:]]  # both storage forms
    write_bin(tmp_path / "lfw.bin", bins, [True, False])
    images, issame = load_bin(tmp_path / "lfw.bin")
    assert images.shape == (4, 3, 16, 16) and issame.tolist() == [True, False]
    torch.testing.assert_close(
        images[3], torch.from_numpy(pixels[3]).permute(2, 0, 1).float() / 127.5 - 1
    )
    write_bin(tmp_path / "bad.bin", list(encoded[:3]), [True, False])
    with pytest.raises(RecordError, match="3 images for 2 pairs"):
        load_bin(tmp_path / "bad.bin")
