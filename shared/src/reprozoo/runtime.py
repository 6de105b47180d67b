"""Devices, seeding, `torchrun` set-up, rank-0 logging and progress bars.

A training script written against this module runs unchanged as a single process or under
`torchrun --nproc-per-node N train.py ...`: `setup_distributed` reads the environment that
`torchrun` sets (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`) and picks
nccl on CUDA and gloo otherwise.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import inspect
import json
import logging
import os
import platform
import random
import socket
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from tqdm.auto import tqdm

_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def pick_device(name: str = "auto") -> torch.device:
    """Return the device called `name`, or the best available one for `auto`."""
    available = ["cpu"]
    if torch.cuda.is_available():
        available.insert(0, "cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        available.insert(len(available) - 1, "mps")
    if name == "auto":
        return torch.device(available[0])
    kind = name.split(":")[0]
    if kind not in available:
        raise ValueError(
            f"device {name!r} is not available on this machine; available: "
            f"{', '.join(available)} (or 'auto')"
        )
    return torch.device(name)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed `random`, NumPy and torch; optionally make torch kernels deterministic."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


def capture_rng_state() -> dict[str, Any]:
    """Every random number generator's state, to put in a checkpoint."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of `capture_rng_state` (also accepts the JSON-round-tripped form)."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.as_tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.as_tensor(s, dtype=torch.uint8) for s in state["cuda"]])


@dataclass(frozen=True)
class Distributed:
    """Where this process sits in a (possibly one-process) distributed run."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup_distributed(device: str = "auto") -> Distributed:
    """Initialise the process group from the `torchrun` environment, if there is one."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device)
    if world_size == 1:
        return Distributed(0, 1, 0, dev, None)
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return Distributed(rank, world_size, local_rank, dev, backend)


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """The mean of `tensor` over all processes (the tensor itself in a single process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return tensor
    out = tensor.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / dist.get_world_size()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _resolve(module: str, file: str, qualname: str) -> Callable:
    """Import `module.qualname`, loading the module from `file` if it is not importable.

    Test modules collected by pytest (importlib mode) are not importable by name in a fresh
    spawned interpreter, so the worker loads them from their file instead.
    """
    try:
        mod = importlib.import_module(module)
    except ImportError:
        spec = importlib.util.spec_from_file_location(f"_reprozoo_worker_{module}", file)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    obj: Any = mod
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _worker(rank: int, world_size: int, port: int, target: tuple, args: tuple) -> None:
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_WORLD_SIZE=str(world_size),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    fn = _resolve(*target)
    try:
        fn(rank, world_size, *args)
    finally:
        cleanup_distributed()


def run_multiprocess(fn: Callable, world_size: int = 2, args: tuple = ()) -> None:
    """Run `fn(rank, world_size, *args)` in `world_size` processes, as `torchrun` would.

    For tests: the processes are spawned with the torchrun environment variables and a free
    port on localhost, so code under test calls `setup_distributed()` exactly as in a real
    run (gloo on CPU). Raises if any process fails.
    """
    target = (fn.__module__, inspect.getfile(fn), fn.__qualname__)
    mp.start_processes(
        _worker,
        args=(world_size, _free_port(), target, args),
        nprocs=world_size,
        join=True,
        start_method="spawn",
    )


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def get_logger(name: str) -> logging.Logger:
    """A logger that prints INFO on rank 0 and only warnings on other ranks."""
    root = logging.getLogger("reprozoo")
    if not getattr(root, "_reprozoo_configured", False):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(_LOG_FORMAT, "%H:%M:%S"))
        root.addHandler(handler)
        root.propagate = False
        root._reprozoo_configured = True  # type: ignore[attr-defined]
    root.setLevel(logging.INFO if _rank() == 0 else logging.WARNING)
    return logging.getLogger(f"reprozoo.{name}")


def library_versions(extra: Iterable[str] = ()) -> dict[str, str]:
    """Versions of python, torch, the core and any installed libraries named in `extra`."""
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    names = ["reprozoo", "numpy", "torchvision", "transformers", "diffusers", "peft", *extra]
    for dist_name in names:
        try:
            versions[dist_name] = importlib.metadata.version(dist_name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def log_run_header(
    logger: logging.Logger,
    *,
    package: str,
    config: dict[str, Any],
    seed: int | None,
    device: torch.device | str,
) -> None:
    """Log the run's config, library versions, device and seed once, at the start."""
    versions = library_versions([package])
    logger.info(
        "run start: package=%s seed=%s device=%s threads=%d world_size=%s",
        package,
        seed,
        device,
        torch.get_num_threads(),
        os.environ.get("WORLD_SIZE", "1"),
    )
    logger.info("versions: %s", json.dumps(versions, sort_keys=True))
    logger.info("config: %s", json.dumps(config, sort_keys=True, default=str))


def progress(iterable: Iterable | None = None, **kwargs: Any) -> tqdm:
    """A tqdm bar that stays silent on non-zero ranks and when REPROZOO_PROGRESS=0."""
    disable = kwargs.pop("disable", False) or _rank() != 0
    disable = disable or os.environ.get("REPROZOO_PROGRESS", "1") == "0"
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("leave", False)
    return tqdm(iterable, disable=disable, **kwargs)
