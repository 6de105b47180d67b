"""Command line of the `petal` package.

    petal train      train the embedded source model and fit its SWAG posterior
    petal swag       fit the SWAG-diagonal posterior of a model (embedded or paper scale)
    petal adapt      run one method over the lifelong stream (embedded or paper scale)
    petal reproduce  the embedded reproduction: tables, figure, JSON record
    petal ablate     prior weight λ and trigger threshold ablations on one stream
    petal report     regenerate the README results section from the record
    petal bench      images per second of every method on the same model and stream

Multi-process source training: `torchrun --nproc-per-node 2 -m petal.cli train ...`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from petal.config import PROFILES, AdaptConfig, profile
from reprozoo.cli import add_common_arguments, run_main
from reprozoo.config import add_dataclass_arguments, config_to_dict, dataclass_from_args
from reprozoo.runtime import get_logger, log_run_header, seed_everything

LOG = get_logger("petal")
README = Path(__file__).resolve().parents[2] / "README.md"
DEFAULT_RESULTS = Path("results") / "petal"


def _parser() -> argparse.ArgumentParser:
    from petal.reproduce import ReproduceConfig

    parser = argparse.ArgumentParser(
        prog="petal",
        description="PETAL: lifelong test-time adaptation (Brahma & Rai, CVPR 2023), reproduced.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train the embedded source model and its SWAG posterior")
    p.add_argument(
        "--dataset",
        choices=("shapes", "digits"),
        default="shapes",
        help="embedded source dataset (default: shapes)",
    )
    p.add_argument("--steps", type=int, default=800, help="source SGD steps (default: 800)")
    p.add_argument(
        "--widths",
        type=int,
        nargs="+",
        default=[8, 16, 32, 64],
        help="channel widths of the BN-CNN stages (default: 8 16 32 64)",
    )
    p.add_argument("--n-train", type=int, default=3000, help="shapes training images")
    add_common_arguments(p, out_default="runs/petal/source")

    p = sub.add_parser("swag", help="fit the SWAG-diagonal source posterior of a model")
    p.add_argument(
        "--scale",
        choices=("embedded", "paper"),
        default="embedded",
        help="embedded: the model saved by `petal train`; paper: a RobustBench "
        "checkpoint fine-tuned on CIFAR-10/100 train from --data-root",
    )
    p.add_argument(
        "--model",
        default="runs/petal/source",
        help="embedded: folder of `petal train`; paper: the checkpoint file",
    )
    p.add_argument(
        "--arch",
        default="wrn-28-10",
        help="paper scale architecture: wrn-28-10, resnext-29, resnet-50",
    )
    p.add_argument("--dataset", default="cifar10", help="paper scale: cifar10 or cifar100")
    add_common_arguments(p, out_default="runs/petal/swag")

    p = sub.add_parser("adapt", help="run one method over the lifelong stream")
    p.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="embedded",
        help="hyper-parameter profile; the options below override it",
    )
    add_dataclass_arguments(p, AdaptConfig, defaults=PROFILES["embedded"])
    p.add_argument(
        "--scale",
        choices=("embedded", "paper"),
        default="embedded",
        help="embedded: the `petal train` model on its test split; paper: CIFAR-C "
        "or ImageNet-C from --data-root with a checkpoint",
    )
    p.add_argument(
        "--source",
        default="runs/petal/source",
        help="embedded: folder of `petal train`; paper: folder of `petal swag`",
    )
    p.add_argument(
        "--dataset", default="cifar10", help="paper scale: cifar10, cifar100 or imagenet"
    )
    p.add_argument(
        "--n-test", type=int, default=384, help="embedded: test images per domain (default: 384)"
    )
    p.add_argument(
        "--n-examples",
        type=int,
        default=10000,
        help="paper scale: images per corruption (10000 CIFAR, 5000 ImageNet)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=50,
        help="save the adaptation state every N batches (resumable)",
    )
    add_common_arguments(p, out_default="runs/petal/adapt")

    p = sub.add_parser("reproduce", help="the embedded reproduction (tables + figure)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="a seconds-long version of the same pipeline (used by the tests)",
    )
    add_dataclass_arguments(p, ReproduceConfig)
    p.add_argument(
        "--out",
        default=str(DEFAULT_RESULTS),
        help=f"folder of the JSON record and figures (default: {DEFAULT_RESULTS})",
    )
    p.add_argument(
        "--no-report",
        action="store_true",
        help="do not update the README results section afterwards",
    )

    p = sub.add_parser("ablate", help="λ and trigger-threshold ablations on one stream")
    p.add_argument("--quick", action="store_true", help="a seconds-long version (tests)")
    p.add_argument(
        "--dataset",
        choices=("shapes", "digits"),
        default="shapes",
        help="embedded dataset (default: shapes)",
    )
    p.add_argument(
        "--out",
        default=str(DEFAULT_RESULTS),
        help=f"folder of the JSON record (default: {DEFAULT_RESULTS})",
    )
    p.add_argument("--no-report", action="store_true", help="do not update the README")

    p = sub.add_parser("report", help="regenerate the README results section from the record")
    p.add_argument(
        "--record",
        default=str(DEFAULT_RESULTS / "embedded.json"),
        help="the JSON record written by `petal reproduce`",
    )
    p.add_argument("--readme", default=str(README), help="the README to update")

    p = sub.add_parser("bench", help="images/s of every method, as ratios to Source")
    p.add_argument("--batches", type=int, default=6, help="batches per method (default: 6)")
    p.add_argument("--batch-size", type=int, default=32, help="batch size (default: 32)")
    p.add_argument(
        "--widths",
        type=int,
        nargs="+",
        default=[8, 16, 32, 64],
        help="channel widths of the BN-CNN",
    )
    return parser


def _cmd_reproduce(args) -> int:
    from petal.reproduce import QUICK, ReproduceConfig, reproduce

    base = QUICK if args.quick else ReproduceConfig()
    cfg = dataclass_from_args(ReproduceConfig, args, base=base)
    record = reproduce(cfg, args.out, quick=args.quick)
    if not args.no_report and not args.quick:
        _update_readme(record, README)
    print(record["extra"]["headline"])
    return 0


def _update_readme(record: dict, readme: Path) -> None:
    from reprozoo.results import render_record, update_readme_section

    markdown = render_record(record, figure_prefix="../../results/petal/")
    update_readme_section(readme, markdown, name="results")


def _cmd_ablate(args) -> int:
    from petal.ablation import ablate
    from reprozoo.results import render_record, update_readme_section

    record = ablate(args.out, quick=args.quick, dataset=args.dataset)
    if not args.no_report and not args.quick:
        update_readme_section(README, render_record(record), name="ablation")
    return 0


def _cmd_report(args) -> int:
    record_path = Path(args.record)
    if not record_path.is_file():
        raise FileNotFoundError(f"no record at {record_path}; run `petal reproduce` first")
    _update_readme(json.loads(record_path.read_text()), Path(args.readme))
    print(f"updated {args.readme}")
    return 0


def _cmd_train(args) -> int:
    from petal.embedded import train_embedded

    train_embedded(args)
    return 0


def _cmd_swag(args) -> int:
    if args.scale == "paper":
        from petal.paper import swag_paper

        swag_paper(args)
    else:
        from petal.embedded import swag_embedded

        swag_embedded(args)
    return 0


def _cmd_adapt(args) -> int:
    base = profile(args.profile)
    cfg = dataclass_from_args(AdaptConfig, args, base=base)
    seed_everything(args.seed, deterministic=args.deterministic)
    log_run_header(
        LOG, package="petal", config=config_to_dict(cfg), seed=args.seed, device=args.device
    )
    if args.scale == "paper":
        from petal.paper import adapt_paper

        result = adapt_paper(args, cfg)
    else:
        from petal.embedded import adapt_embedded

        result = adapt_embedded(args, cfg)
    for name, m in zip(result.domains, result.metrics, strict=True):
        print(
            f"{name:18s} error {100 * m['error']:6.2f}%  NLL {m['nll']:.4f}  "
            f"Brier {m['brier']:.4f}  ECE {100 * m['ece']:.2f}%"
        )
    print(
        f"{'mean':18s} error {100 * result.mean('error'):6.2f}%  NLL {result.mean('nll'):.4f}"
        f"  Brier {result.mean('brier'):.4f}  ECE {100 * result.mean('ece'):.2f}%"
    )
    return 0


def _cmd_bench(args) -> int:
    from petal.bench import bench

    print(bench(batches=args.batches, batch_size=args.batch_size, widths=tuple(args.widths)))
    return 0


def _main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    handler = {
        "train": _cmd_train,
        "swag": _cmd_swag,
        "adapt": _cmd_adapt,
        "reproduce": _cmd_reproduce,
        "ablate": _cmd_ablate,
        "report": _cmd_report,
        "bench": _cmd_bench,
    }
    return handler[args.command](args)


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
