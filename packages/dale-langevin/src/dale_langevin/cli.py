"""Command line of the `dale-langevin` package.

dale-langevin train --out runs/dl                     # GBM model on the embedded digits
dale-langevin train --process ve --out runs/ve        # the additive baseline
dale-langevin sample --model runs/dl --sampler dls --schedule consistent --out samples
dale-langevin eval --model runs/dl --sampler ums --schedule paper
dale-langevin reproduce [--quick]                     # the headline table, then `report`
dale-langevin report                                  # README section from the record
dale-langevin bench
torchrun --nproc-per-node 2 -m dale_langevin.cli train --out runs/dl
dale-langevin train --profile paper --dataset mnist --data-root DATA [--download]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from dale_langevin.config import PROFILES, DaleConfig, profile
from dale_langevin.sample import SAMPLERS, SCHEDULES
from reprozoo.cli import add_common_arguments, run_main
from reprozoo.config import ConfigError, add_dataclass_arguments, dataclass_from_args

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RESULTS = Path("results/dale-langevin")


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--profile",
        default="digits",
        choices=sorted(PROFILES),
        help="starting setting: digits (embedded default), paper (the released MNIST-family "
        "setting), quick (seconds-long smoke run); any option below overrides it",
    )
    p.add_argument(
        "--download",
        action="store_true",
        help="let torchvision download a missing MNIST-family data set into --data-root",
    )
    add_dataclass_arguments(p, DaleConfig, defaults=PROFILES["digits"])


def _sampling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="output folder of a `train` run")
    p.add_argument(
        "--sampler", default="dls", choices=SAMPLERS, help="GBM sampler (ignored for VE)"
    )
    p.add_argument(
        "--schedule",
        default="consistent",
        choices=SCHEDULES,
        help="consistent: delta = T/N, L = 1, no annealing; paper: the released tuned constants; "
        "piecewise: the released alternative schedule",
    )
    p.add_argument("--n", type=int, default=None, help="number of samples (default: n_samples)")
    p.add_argument("--prior", default=None, choices=("pooled", "per_pixel"), help="prior override")
    p.add_argument("--data-root", default=None, help="data root for MNIST-family models")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dale-langevin",
        description="Dale meets Langevin: multiplicative denoising diffusion, reproduced.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a GBM model (or the VE baseline) and save it")
    _config_args(p)
    add_common_arguments(p, out_default="runs/dale-langevin")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")

    p = sub.add_parser("sample", help="draw samples from a trained model (grid PNG + tensor)")
    _sampling_args(p)
    p.add_argument("--out", default="samples", help="output folder (default: samples)")

    p = sub.add_parser("eval", help="sample and score against the test split (FD, KID, ...)")
    _sampling_args(p)

    p = sub.add_parser("reproduce", help="the embedded headline reproduction, then `report`")
    p.add_argument("--quick", action="store_true", help="seconds-long smoke version")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    p.add_argument("--out", default=str(DEFAULT_RESULTS), help="results folder")
    p.add_argument("--no-readme", action="store_true", help="do not update the package README")

    p = sub.add_parser("report", help="write the README results section from the record")
    p.add_argument("--out", default=str(DEFAULT_RESULTS), help="results folder")

    p = sub.add_parser("bench", help="images/s of DLS and UMS vs additive VE at equal steps")
    p.add_argument("--batch", type=int, default=500, help="sampler batch (default: 500)")
    p.add_argument("--steps", type=int, default=100, help="sampler steps (default: 100)")
    p.add_argument("--arch", default="mlp", choices=("mlp", "unet"), help="network")
    return parser


def _load_data(cfg: DaleConfig, data_root, download: bool = False):
    from dale_langevin.data import load_dataset

    return load_dataset(cfg.dataset, data_root, download)


def _cmd_train(args) -> None:
    from dale_langevin.train import train_model

    cfg = dataclass_from_args(DaleConfig, args, base=profile(args.profile))
    data = _load_data(cfg, args.data_root, args.download)
    trained = train_model(
        cfg, data, args.out, seed=args.seed, device=args.device, resume=not args.no_resume
    )
    print(f"trained {cfg.process} for {trained.steps} steps; model in {Path(args.out) / 'model'}")


def _samples(args):
    from dale_langevin.sample import generate
    from dale_langevin.train import load_trained

    trained = load_trained(args.model)
    data = _load_data(trained.cfg, args.data_root)
    n = args.n or trained.cfg.n_samples
    if n < 1:
        raise ConfigError(f"--n must be >= 1, got {n}")
    s = generate(
        trained,
        data,
        n,
        sampler=args.sampler,
        schedule=args.schedule,
        seed=args.seed,
        prior=args.prior,
        show_progress=True,
    )
    return trained, data, s


def _cmd_sample(args) -> None:
    from safetensors.torch import save_file

    from dale_langevin.plots import sample_grid

    _, _, s = _samples(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_file({"pixels": s.pixels.contiguous()}, str(out / "samples.safetensors"))
    sample_grid(s.pixels, out / "grid.png", s.label)
    print(
        json.dumps(
            {
                "label": s.label,
                "nfe": s.stats.nfe,
                "min_iterate": s.stats.min_value,
                "nonpositive": s.stats.nonpositive,
                "guard_hits": s.stats.guard_hits,
                "clipped": s.clipped_fraction,
                "out": str(out),
            },
            indent=2,
        )
    )


def _cmd_eval(args) -> None:
    from dale_langevin.evaluate import Evaluator, train_classifier

    _, data, s = _samples(args)
    clf, acc = train_classifier(data)
    metrics = Evaluator(data, clf)(s.pixels)
    print(json.dumps({"label": s.label, "classifier_acc": acc, **metrics}, indent=2))


def _cmd_reproduce(args) -> None:
    from dale_langevin.reproduce import run_reproduction

    torch.set_num_threads(1)
    record = run_reproduction(args.out, seeds=tuple(args.seeds), quick=args.quick)
    if not args.no_readme and not args.quick:
        _report(args.out, record)


def _report(out, record=None) -> None:
    from dale_langevin.reproduce import update_readme

    out = Path(out)
    path = out / "digits.json"
    if record is None:
        if not path.is_file():
            raise ConfigError(f"no result record at {path}; run `dale-langevin reproduce` first")
        record = json.loads(path.read_text())
    readme = PACKAGE_ROOT / "README.md"
    prefix = Path("../..") / out if not out.is_absolute() else out
    update_readme(record, readme, f"{prefix.as_posix()}/")
    print(f"updated {readme}")


def _cmd_bench(args) -> None:
    from dale_langevin.bench import run_bench

    result = run_bench(
        profile("digits").replace(arch=args.arch, width=256 if args.arch == "mlp" else 16),
        batch=args.batch,
        levels=args.steps,
    )
    print(result["table"])


def _main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    commands = {
        "train": _cmd_train,
        "sample": _cmd_sample,
        "eval": _cmd_eval,
        "reproduce": _cmd_reproduce,
        "bench": _cmd_bench,
        "report": lambda a: _report(a.out),
    }
    commands[args.command](args)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
