"""MXNet RecordIO (``.rec`` + ``.idx``) and insightface ``.bin`` files, read without MXNet.

RecordIO layout: each record is one or more chunks ``<uint32 magic 0xCED7230A> <uint32 lrec>
<payload, padded to 4 bytes>`` where ``cflag = lrec >> 29`` (0 whole, 1 start, 2 middle,
3 end) and ``length = lrec & (2^29 − 1)``. A writer splits a payload wherever the magic bytes
occur in it; the reader puts them back between chunks. A payload starts with the image header
``<IfQQ`` (flag, label, id, id2); ``flag > 0`` means ``flag`` float32 labels follow; then the
encoded image. In insightface's layout record 0 has labels (a, b): image keys are 1…a−1 and
keys a…b−1 hold each identity's [start, end) key range.
"""

from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path

import numpy as np
import torch
from PIL import Image

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_HEADER = struct.Struct("<IfQQ")
_LEN_MASK = (1 << 29) - 1


class RecordError(ValueError):
    """A record file is malformed; the message names the file and the position."""


def pack_record(label, image_bytes: bytes, id1: int = 0, id2: int = 0) -> bytes:
    """Payload of one record: the ``<IfQQ`` header, optional label array, image bytes."""
    labels = np.atleast_1d(np.asarray(label, dtype=np.float32))
    if labels.size == 1:
        return _HEADER.pack(0, float(labels[0]), id1, id2) + image_bytes
    return _HEADER.pack(labels.size, 0.0, id1, id2) + labels.tobytes() + image_bytes


def unpack_record(payload: bytes):
    """(label array, id, image bytes) of a payload."""
    flag, label, id1, _ = _HEADER.unpack_from(payload)
    body = payload[_HEADER.size :]
    if flag > 0:
        labels = np.frombuffer(body[: 4 * flag], dtype=np.float32).copy()
        return labels, id1, body[4 * flag :]
    return np.array([label], dtype=np.float32), id1, body


def _chunk(cflag: int, data: bytes) -> bytes:
    pad = (-len(data)) % 4
    return struct.pack("<II", MAGIC, (cflag << 29) | len(data)) + data + b"\0" * pad


def write_recordio(rec_path, idx_path, records: dict[int, bytes]):
    """Write ``{key: payload}`` as a .rec file and its text .idx (key<TAB>offset)."""
    lines = []
    with open(rec_path, "wb") as rec:
        for key, payload in records.items():
            lines.append(f"{key}\t{rec.tell()}\n")
            parts = payload.split(_MAGIC_BYTES)
            if len(parts) == 1:
                rec.write(_chunk(0, payload))
                continue
            for i, part in enumerate(parts):
                rec.write(_chunk(1 if i == 0 else 3 if i == len(parts) - 1 else 2, part))
    Path(idx_path).write_text("".join(lines))


class RecordReader:
    """Random access to the payloads of an indexed RecordIO file."""

    def __init__(self, rec_path, idx_path=None):
        self.rec_path = Path(rec_path)
        self.idx_path = Path(idx_path) if idx_path else self.rec_path.with_suffix(".idx")
        self.offsets: dict[int, int] = {}
        for n, line in enumerate(self.idx_path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                key, offset = line.split("\t")
                self.offsets[int(key)] = int(offset)
            except ValueError as exc:
                raise RecordError(
                    f"{self.idx_path}:{n}: expected 'key<TAB>offset', got {line!r}"
                ) from exc
        self.size = self.rec_path.stat().st_size
        self._file = None

    def __getstate__(self):  # file handles do not pickle into DataLoader workers
        return {**self.__dict__, "_file": None}

    def keys(self):
        return self.offsets.keys()

    def read(self, key: int) -> bytes:
        if key not in self.offsets:
            raise RecordError(f"{self.idx_path}: no key {key} in the index")
        if self._file is None:
            self._file = open(self.rec_path, "rb")  # noqa: SIM115 (kept open for random access)
        pos = self.offsets[key]
        if not 0 <= pos < self.size:
            raise RecordError(
                f"{self.rec_path}: key {key} points at byte {pos}, outside the "
                f"{self.size}-byte file; the .idx does not match the .rec"
            )
        parts = []
        while True:
            self._file.seek(pos)
            head = self._file.read(8)
            if len(head) < 8:
                raise RecordError(f"{self.rec_path}: record {key} truncated at byte {pos}")
            magic, lrec = struct.unpack("<II", head)
            if magic != MAGIC:
                raise RecordError(
                    f"{self.rec_path}: bad magic 0x{magic:08X} at byte {pos} "
                    f"(record key {key}); the .idx offset is wrong or the file "
                    "is corrupt"
                )
            cflag, length = lrec >> 29, lrec & _LEN_MASK
            data = self._file.read(length)
            if len(data) < length:
                raise RecordError(f"{self.rec_path}: record {key} truncated at byte {pos}")
            parts.append(data)
            pos += 8 + length + (-length) % 4
            if cflag in (0, 3):
                return _MAGIC_BYTES.join(parts)


def decode_image(data: bytes, where: str) -> np.ndarray:
    """JPEG/PNG bytes to an H×W×3 uint8 RGB array; errors name the record."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("RGB"))
    except Exception as exc:  # Pillow raises several types for undecodable data
        raise RecordError(f"{where}: the image does not decode ({exc})") from exc


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """uint8 H×W×3 to float C×H×W in [−1, 1] (insightface normalisation)."""
    return torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float().div(127.5).sub(1.0)


class RecordFaceSource:
    """MS1M-style training images from ``train.rec``/``train.idx`` in insightface's layout.

    Implements the ``get(indices)`` interface of :mod:`unpg.train`.
    """

    def __init__(self, rec_path, idx_path=None):
        self.reader = RecordReader(rec_path, idx_path)
        labels0, _, _ = unpack_record(self.reader.read(0))
        declared = None
        if len(labels0) >= 2:
            a, b = int(labels0[0]), int(labels0[1])
            self.keys = list(range(1, a))
            declared = b - a if b > a else None
        else:  # no header record: every key is an image
            self.keys = sorted(k for k in self.reader.offsets if k != 0)
        missing = [
            k for k in self.keys[:: max(1, len(self.keys) // 1000)] if k not in self.reader.offsets
        ]
        if missing:
            raise RecordError(
                f"{self.reader.idx_path}: image keys {missing[:5]} from the header "
                "record are missing from the index"
            )
        self.labels = torch.tensor(
            [int(unpack_record(self.reader.read(k))[0][0]) for k in self.keys]
        )
        self.num_classes = declared or int(self.labels.max()) + 1
        bad = ((self.labels < 0) | (self.labels >= self.num_classes)).nonzero().flatten()
        if len(bad):
            i = int(bad[0])
            raise RecordError(
                f"{self.reader.rec_path}: record key {self.keys[i]} has label "
                f"{int(self.labels[i])}, outside [0, {self.num_classes})"
            )

    def __len__(self):
        return len(self.keys)

    def get(self, idx: torch.Tensor):
        images = []
        for i in idx.tolist():
            key = self.keys[i]
            _, _, data = unpack_record(self.reader.read(key))
            images.append(to_tensor(decode_image(data, f"{self.reader.rec_path} key {key}")))
        return torch.stack(images), self.labels[idx]


def load_bin(path):
    """An insightface verification ``.bin``: (images N×3×H×W in [−1, 1], issame of N/2 pairs)."""
    path = Path(path)
    with open(path, "rb") as fh:
        try:
            bins, issame = pickle.load(fh, encoding="bytes")
        except Exception as exc:
            raise RecordError(f"{path}: not a (bins, issame_list) pickle ({exc})") from exc
    if len(bins) != 2 * len(issame):
        raise RecordError(
            f"{path}: {len(bins)} images for {len(issame)} pairs; expected {2 * len(issame)}"
        )
    images = []
    for i, raw in enumerate(bins):
        data = raw.tobytes() if isinstance(raw, np.ndarray) else bytes(raw)
        images.append(to_tensor(decode_image(data, f"{path} image {i} (pair {i // 2})")))
    return torch.stack(images), np.asarray(issame, dtype=bool)


def write_bin(path, images: list[bytes], issame: list[bool]):
    """Write a ``.bin`` in insightface's format (used by the tests)."""
    with open(path, "wb") as fh:
        pickle.dump((images, list(issame)), fh, protocol=2)


def read_ijb_meta(root, name: str):
    """IJB-B/C insightface meta files: (image names, template ids, media ids, pairs t1, t2,
    labels) from ``meta/<name>_face_tid_mid.txt`` and ``meta/<name>_template_pair_label.txt``."""
    root = Path(root)
    rows = [
        line.split()
        for line in (root / "meta" / f"{name}_face_tid_mid.txt").read_text().splitlines()
        if line.strip()
    ]
    pairs = np.loadtxt(root / "meta" / f"{name}_template_pair_label.txt", dtype=np.int64, ndmin=2)
    names = [r[0] for r in rows]
    return (
        names,
        np.array([int(r[1]) for r in rows]),
        np.array([int(r[2]) for r in rows]),
        pairs[:, 0],
        pairs[:, 1],
        pairs[:, 2].astype(bool),
    )
