"""Pieces every paper's command line shares: common options and clean error exits."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from reprozoo.checkpoint import CheckpointError
from reprozoo.config import ConfigError
from reprozoo.data import DataNotFoundError


def add_common_arguments(parser: argparse.ArgumentParser, out_default: str = "runs") -> None:
    """`--seed`, `--device`, `--deterministic`, `--data-root` and `--out`."""
    group = parser.add_argument_group("run options")
    group.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    group.add_argument(
        "--device",
        default="auto",
        help="cpu, cuda, cuda:N, mps, or auto = the best available (default: auto)",
    )
    group.add_argument(
        "--deterministic",
        action="store_true",
        help="use deterministic torch kernels (slower on GPU; bit-identical reruns)",
    )
    group.add_argument(
        "--data-root",
        default=None,
        help="folder with paper-scale datasets (default: $REPROZOO_DATA, else ~/.cache/reprozoo)",
    )
    group.add_argument("--out", default=out_default, help=f"output folder (default: {out_default})")


def run_main(fn: Callable[[Sequence[str] | None], int | None], argv=None) -> int:
    """Call `fn(argv)`; turn the user-facing errors into one clean message and exit code 2."""
    try:
        return int(fn(argv) or 0)
    except (DataNotFoundError, CheckpointError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
