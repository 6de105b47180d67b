"""Checkpoints: any nested training state in safetensors plus JSON, written atomically.

A checkpoint is a folder with two files:

| file | holds |
|---|---|
| `state.safetensors` | every tensor of the state, flattened to keys `model/conv.weight`, ... |
| `meta.json` | package, version, config, step, the non-tensor skeleton, the tensors' SHA-256 |

Both are written into a temporary sibling folder that then replaces the old checkpoint, so a
run killed while saving leaves the previous checkpoint intact. Loading checks the checksum,
the package and the config, and refuses with a `CheckpointError` that says what to do.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from reprozoo.runtime import capture_rng_state, restore_rng_state

STATE_FILE = "state.safetensors"
META_FILE = "meta.json"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or belongs to another run."""


def _flatten(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Move tensors (and NumPy arrays) into `tensors`; return a JSON skeleton of the rest."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": prefix}
    if isinstance(obj, np.ndarray):
        tensors[prefix] = torch.from_numpy(
            obj.astype(np.int64 if obj.dtype.kind in "iu" else obj.dtype)
        )
        return {"__ndarray__": prefix, "dtype": str(obj.dtype)}
    if isinstance(obj, dict):
        items = [[k, _flatten(v, f"{prefix}/{k}", tensors)] for k, v in obj.items()]
        return {"__dict__": items}
    if isinstance(obj, list | tuple):
        items = [_flatten(v, f"{prefix}/{i}", tensors) for i, v in enumerate(obj)]
        return {"__tuple__": items} if isinstance(obj, tuple) else items
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} at {prefix!r} in a checkpoint")


def _unflatten(skel: Any, tensors: dict[str, torch.Tensor], device: str | torch.device) -> Any:
    if isinstance(skel, list):
        return [_unflatten(v, tensors, device) for v in skel]
    if isinstance(skel, dict):
        if "__tensor__" in skel:
            return tensors[skel["__tensor__"]].to(device)
        if "__ndarray__" in skel:
            return tensors[skel["__ndarray__"]].numpy().astype(skel["dtype"])
        if "__tuple__" in skel:
            return tuple(_unflatten(v, tensors, device) for v in skel["__tuple__"])
        return {k: _unflatten(v, tensors, device) for k, v in skel["__dict__"]}
    return skel


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_state(
    directory: str | os.PathLike,
    state: dict[str, Any],
    *,
    package: str,
    version: str,
    config: dict[str, Any],
    step: int = 0,
) -> Path:
    """Write `state` (nested dicts/lists of tensors and JSON values) as a checkpoint folder."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_sibling(directory)
    tmp.mkdir()
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _flatten(state, "s", tensors)
    save_file(tensors, str(tmp / STATE_FILE))
    meta = {
        "format": FORMAT_VERSION,
        "package": package,
        "version": version,
        "step": step,
        "config": config,
        "sha256": _sha256(tmp / STATE_FILE),
        "skeleton": skeleton,
    }
    with open(tmp / META_FILE, "w") as fh:
        json.dump(meta, fh, default=str)
        fh.flush()
        os.fsync(fh.fileno())
    return _swap_in(tmp, directory)


def _temporary_sibling(directory: Path) -> Path:
    tmp = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    return tmp


def _swap_in(tmp: Path, directory: Path) -> Path:
    """Replace `directory` by the finished folder `tmp` (a crash leaves one of the two whole)."""
    old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
    if directory.exists():
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def save_pretrained_atomic(model: Any, directory: str | os.PathLike, **kwargs: Any) -> Path:
    """`model.save_pretrained` (transformers, diffusers, `PyTorchModelHubMixin`) made atomic.

    The model is written into a temporary sibling folder that then replaces `directory`, so an
    interrupted save never leaves a half-written model where a finished one is expected.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_sibling(directory)
    model.save_pretrained(tmp, **kwargs)
    return _swap_in(tmp, directory)


def _config_diff(saved: dict[str, Any], current: dict[str, Any], ignore: tuple[str, ...]) -> list:
    keys = (set(saved) | set(current)) - set(ignore)
    saved = json.loads(json.dumps(saved, default=str))
    current = json.loads(json.dumps(current, default=str))
    return sorted(
        f"{k}: checkpoint={saved.get(k, '<absent>')!r} now={current.get(k, '<absent>')!r}"
        for k in keys
        if saved.get(k, "<absent>") != current.get(k, "<absent>")
    )


def load_state(
    directory: str | os.PathLike,
    *,
    package: str,
    config: dict[str, Any] | None = None,
    ignore_keys: tuple[str, ...] = (),
    map_location: str | torch.device = "cpu",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a checkpoint folder back; refuse it if it is corrupt or from another run."""
    directory = Path(directory)
    meta_path, state_path = directory / META_FILE, directory / STATE_FILE
    if not meta_path.is_file() or not state_path.is_file():
        raise CheckpointError(
            f"no checkpoint at {directory} (expected {META_FILE} and {STATE_FILE}); "
            "check the path, or start a fresh run without --resume"
        )
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(
            f"{meta_path} is not valid JSON ({exc}); the checkpoint is corrupt"
        ) from exc
    if meta.get("format") != FORMAT_VERSION or "sha256" not in meta:
        raise CheckpointError(
            f"{meta_path} is not a reprozoo checkpoint (format {meta.get('format')})"
        )
    if meta["package"] != package:
        raise CheckpointError(
            f"{directory} is a checkpoint of package {meta['package']!r}, not {package!r}"
        )
    if _sha256(state_path) != meta["sha256"]:
        raise CheckpointError(
            f"{state_path} does not match the checksum in {META_FILE}: the file is corrupt or "
            "was modified; delete the checkpoint folder and rerun"
        )
    if config is not None:
        diff = _config_diff(meta["config"], config, ignore_keys)
        if diff:
            raise CheckpointError(
                f"the checkpoint at {directory} was written with a different config:\n  "
                + "\n  ".join(diff)
                + "\nresume with the same options, or write to a new output folder"
            )
    try:
        tensors = load_file(str(state_path))
    except Exception as exc:  # safetensors raises several error types for bad files
        raise CheckpointError(f"cannot read {state_path}: {exc}") from exc
    return _unflatten(meta["skeleton"], tensors, map_location), meta


def save_training_state(
    directory: str | os.PathLike,
    *,
    package: str,
    version: str,
    config: dict[str, Any],
    step: int,
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
    schedulers: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Save modules, optimisers, schedulers, RNG states and `extra` in one checkpoint."""
    state = {
        "modules": {k: m.state_dict() for k, m in modules.items()},
        "optimizers": {k: o.state_dict() for k, o in (optimizers or {}).items()},
        "schedulers": {k: s.state_dict() for k, s in (schedulers or {}).items()},
        "rng": capture_rng_state(),
        "extra": extra or {},
    }
    return save_state(directory, state, package=package, version=version, config=config, step=step)


def load_training_state(
    directory: str | os.PathLike,
    *,
    package: str,
    config: dict[str, Any] | None,
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
    schedulers: dict[str, Any] | None = None,
    ignore_keys: tuple[str, ...] = (),
) -> tuple[int, dict[str, Any]]:
    """Restore what `save_training_state` wrote, in place; return `(step, extra)`."""
    state, meta = load_state(directory, package=package, config=config, ignore_keys=ignore_keys)
    for group, objects in (
        ("modules", modules),
        ("optimizers", optimizers or {}),
        ("schedulers", schedulers or {}),
    ):
        missing = set(objects) - set(state[group])
        if missing:
            raise CheckpointError(f"{directory} has no {group} named {sorted(missing)}")
        for name, obj in objects.items():
            try:
                obj.load_state_dict(state[group][name])
            except (RuntimeError, KeyError, ValueError) as exc:
                raise CheckpointError(
                    f"{directory}: {group[:-1]} {name!r} does not fit this run ({exc})"
                ) from exc
    restore_rng_state(state["rng"])
    return int(meta["step"]), state["extra"]
