"""Command line of the `cdpo` package: critical-token DPO (cDPO, Lin et al.), reproduced.

cdpo reproduce                      # the embedded CPU reproduction (tens of minutes on 2 cores)
cdpo reproduce --profile quick      # a seconds-long smoke run
cdpo train --until scores           # run the pipeline up to one stage and stop
cdpo eval --checkpoint runs/cdpo/default/pref/cdpo_seq-s0
cdpo sample --checkpoint runs/cdpo/default/base --n 5
cdpo report                         # tables from results/cdpo/*.json into the README
cdpo bench
torchrun --nproc-per-node 2 -m cdpo.cli train --until pref
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

from reprozoo.cli import add_common_arguments, run_main
from reprozoo.config import add_dataclass_arguments, config_to_dict, dataclass_from_args
from reprozoo.runtime import (
    cleanup_distributed,
    get_logger,
    log_run_header,
    seed_everything,
    setup_distributed,
)

from .config import PROFILES, CdpoConfig, profile, replace

log = get_logger("cdpo")
STAGES = ("base", "samples", "selection", "posneg", "scores", "pref", "eval")


def _config_parser(sub, name: str, help_text: str):
    p = sub.add_parser(name, help=help_text, description=help_text)
    p.add_argument(
        "--profile",
        default="default",
        choices=sorted(PROFILES),
        help="starting values: default = embedded CPU run, quick = smoke run, "
        "paper = the released code's hyperparameters (default: default)",
    )
    add_common_arguments(p, out_default="runs/cdpo")
    add_dataclass_arguments(p, CdpoConfig, PROFILES["default"])
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cdpo",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = _config_parser(sub, "reproduce", "run the whole pipeline and write the result record")
    p.add_argument(
        "--results",
        default=None,
        help="where to write the JSON record (default: results/cdpo/<profile>.json)",
    )
    p.add_argument(
        "--skip-analyses",
        action="store_true",
        help="leave out detection and rollouts (method ablations in a finished run folder)",
    )
    p.add_argument(
        "--experiment", default=None, help="name of the record (default: reproduce-<task>)"
    )
    p = _config_parser(sub, "train", "run the pipeline up to and including one stage")
    p.add_argument("--until", choices=STAGES, default="pref", help="last stage to run")
    p = _config_parser(sub, "eval", "greedy accuracy of a saved model on the test questions")
    p.add_argument("--checkpoint", required=True, help="a model folder written by the pipeline")
    p = _config_parser(sub, "sample", "print sampled solutions of a saved model")
    p.add_argument("--checkpoint", required=True, help="a model folder written by the pipeline")
    p.add_argument("--n", type=int, default=5, help="number of test questions (default: 5)")
    p.add_argument("--sample-temperature", type=float, default=0.0, help="0 = greedy (default: 0)")
    p = sub.add_parser("report", help="render results/cdpo/*.json into the package README")
    p.add_argument("--results-dir", default="results/cdpo", help="folder of JSON records")
    p.add_argument(
        "--readme",
        default=str(Path(__file__).parents[2] / "README.md"),
        help="README to update between the results markers",
    )
    p = sub.add_parser("bench", help="cDPO vs DPO step time and KV-cache sampling throughput")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per figure (default: 5)")
    return parser


def _setup(args):
    cfg = dataclass_from_args(CdpoConfig, args, base=profile(args.profile))
    cfg = replace(cfg, seed=args.seed)
    if os.environ.get("OMP_NUM_THREADS") is None:
        torch.set_num_threads(min(2, torch.get_num_threads()))
    dist = setup_distributed("cpu" if args.device == "auto" else args.device)
    seed_everything(cfg.seed, args.deterministic)
    log_run_header(
        log, package="cdpo", config=config_to_dict(cfg), seed=cfg.seed, device=dist.device
    )
    return cfg, dist


def main_args(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "report":
        from .report import report

        print(report(Path(args.results_dir), Path(args.readme)))
        return 0
    if args.command == "bench":
        from .bench import bench

        print(bench(repeats=args.repeats))
        return 0
    cfg, dist = _setup(args)
    try:
        return _run(args, cfg, dist)
    finally:
        cleanup_distributed()


def _run(args, cfg, dist) -> int:
    from .pipeline import Pipeline

    out = Path(args.out) / (args.profile if cfg.task == "arith" else f"{args.profile}-{cfg.task}")
    if args.command == "reproduce":
        from .reproduce import reproduce

        results = (
            Path(args.results) if args.results else Path("results/cdpo") / f"{args.profile}.json"
        )
        record = reproduce(
            cfg,
            out,
            results,
            str(dist.device),
            dist,
            args.data_root,
            analyses=not args.skip_analyses,
            experiment=args.experiment,
        )
        if record is not None:
            log.info("wrote %s (%.0f s)", results, record["provenance"]["wall_time_s"])
        return 0
    pipe = Pipeline(cfg, out, dist, args.data_root)
    if args.command == "train":
        steps = {
            "base": pipe.base,
            "samples": pipe.samples,
            "selection": pipe.selection,
            "posneg": lambda: (pipe.posneg("pos"), pipe.posneg("neg")),
            "scores": pipe.scores,
            "pref": lambda: pipe.run_methods(),
            "eval": lambda: pipe.run_methods(),
        }
        for stage in STAGES[: STAGES.index(args.until) + 1]:
            if stage != "eval" or args.until == "eval":
                steps[stage]()
        log.info("stages up to %r are in %s", args.until, out)
        return 0
    from .model import load_model

    model = load_model(args.checkpoint).eval()
    if args.command == "eval":
        res = pipe.evaluate(f"cli-{Path(args.checkpoint).name}", lambda: model)
        print(json.dumps({k: v for k, v in res.items() if k != "correct"}, indent=2))
        return 0
    from .sampling import sample

    t = pipe.task
    qs = t.test[: args.n]
    outs = sample(
        model,
        [t.prompt(q, fewshot=True) for q in qs],
        eos_id=t.eos_id,
        pad_id=t.pad_id,
        max_new_tokens=cfg.max_new_tokens,
        temperature=args.sample_temperature,
        top_p=cfg.top_p,
    )
    for q, o in zip(qs, outs, strict=True):
        ans, ok = t.grade(q, o)
        print(f"{t.show(q)}\n  -> {t.decode(o)}   [{'correct' if ok else 'wrong'}: {ans}]")
    return 0


def main(argv=None) -> int:
    return run_main(main_args, argv)


if __name__ == "__main__":
    sys.exit(main())
