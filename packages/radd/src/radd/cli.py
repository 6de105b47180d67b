"""Command line of the `radd` package.

radd train --loss lambda_dce --steps 400 --out runs/radd          # embedded pydoc corpus
radd train --profile paper --data-root /data --out runs/owt       # OpenWebText, GPT-2 BPE
torchrun --nproc-per-node 2 -m radd.cli train --profile default --out runs/ddp
radd eval --model runs/radd/model --loss lambda_dce --draws 64
radd sample --model runs/radd/model --steps 1024 --prefix "class " --n 4
radd reproduce [--quick]          # every table of the embedded reproduction
radd report                       # README tables and figures from results/radd/*.json
radd bench                        # training / sampling speed, cached vs uncached
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from radd.config import PROFILES, TrainConfig
from radd.losses import LOSSES
from radd.sampler import METHODS
from reprozoo.cli import add_common_arguments, run_main
from reprozoo.config import ConfigError, add_dataclass_arguments, dataclass_from_args
from reprozoo.runtime import get_logger, seed_everything

log = get_logger("radd")
PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def _profile_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile",
        default="default",
        choices=tuple(PROFILES),
        help="starting values of the training options: default (pydoc bytes on CPU), quick, "
        "markov (synthetic chain with exact likelihood), paper (RADD-small on OpenWebText)",
    )


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="radd",
        description="RADD: reparameterized absorbing discrete diffusion (Ou et al., ICLR 2025), "
        "reproduced. Subcommands train, evaluate and sample models and regenerate the tables.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a RADD (or SEDD-style) model")
    _profile_option(p)
    add_dataclass_arguments(p, TrainConfig)
    p.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint")
    p.add_argument("--max-minutes", type=float, default=None, help="wall-clock cap of the run")
    add_common_arguments(p, out_default="runs/radd")

    p = sub.add_parser("eval", help="estimate the NLL bound / perplexity of a saved model")
    p.add_argument("--model", required=True, help="folder written by save_pretrained")
    _profile_option(p)
    add_dataclass_arguments(p, TrainConfig)
    p.add_argument("--estimator", default="lambda_dce", choices=LOSSES, help="bound estimator")
    p.add_argument("--draws", type=int, default=16, help="noise draws per sequence (paper: 1024)")
    p.add_argument("--sequences", type=int, default=256, help="validation sequences to score")
    p.add_argument(
        "--zero-shot",
        default=None,
        help="hf corpus only: score a zero-shot set under <data-root>/radd/zero_shot/ "
        "(lambada, wikitext2, ptb, wikitext103, lm1b) instead of the validation split",
    )
    add_common_arguments(p, out_default="runs/radd-eval")

    p = sub.add_parser("sample", help="generate (or infill) with the cached sampler")
    p.add_argument("--model", required=True, help="folder written by save_pretrained")
    p.add_argument("--n", type=int, default=4, help="number of samples")
    p.add_argument("--length", type=int, default=None, help="sample length (default: model's)")
    p.add_argument("--steps", type=int, default=1024, help="sampling steps n")
    p.add_argument("--method", default="tweedie", choices=METHODS, help="reverse update")
    p.add_argument("--no-cache", action="store_true", help="run the network at every step")
    p.add_argument("--ordered", action="store_true", help="AO-ARM sampler, one token per call")
    p.add_argument("--prefix", default="", help="text fixed at the start (byte tokenizer)")
    p.add_argument("--suffix", default="", help="text fixed at the end (byte tokenizer)")
    p.add_argument("--tokenizer", default=None, help="GPT-2 tokenizer folder for hf models")
    add_common_arguments(p, out_default="runs/radd-samples")

    from radd.reproduce import ReproduceConfig

    p = sub.add_parser("reproduce", help="run the embedded reproduction and write its record")
    p.add_argument("--quick", action="store_true", help="tiny sizes (about a minute)")
    add_dataclass_arguments(p, ReproduceConfig)
    add_common_arguments(p, out_default="results/radd")

    p = sub.add_parser("report", help="render results/radd/*.json into the package README")
    p.add_argument("--results", default="results/radd", help="folder of result records")
    p.add_argument("--readme", default=str(PACKAGE_ROOT / "README.md"), help="README to update")

    p = sub.add_parser("bench", help="tokens per second of training and sampling")
    p.add_argument("--model-size", default="base", help="network size (random weights)")
    p.add_argument("--length", type=int, default=128, help="sequence length L")
    p.add_argument("--steps", type=int, default=1024, help="sampling steps")
    p.add_argument("--batch", type=int, default=4, help="sampling batch")
    p.add_argument("--record", default=None, help="also write a JSON result record here")
    return parser


def _cmd_train(args) -> None:
    from radd.train import load_corpus, train

    cfg = dataclass_from_args(TrainConfig, args, PROFILES[args.profile])
    seed_everything(args.seed, args.deterministic)
    corpus = load_corpus(cfg, args.data_root)
    max_s = args.max_minutes * 60 if args.max_minutes else None
    result = train(
        cfg,
        args.seed,
        args.out,
        device=args.device,
        resume=args.resume,
        corpus=corpus,
        max_seconds=max_s,
    )
    if result["dist"].is_main:
        log.info("done: %d steps; EMA model in %s", result["steps"], Path(args.out) / "model")


def _cmd_eval(args) -> None:
    from radd.evaluate import estimate_bound
    from radd.model import RADDModel
    from radd.schedule import make_schedule
    from radd.train import load_corpus

    cfg = dataclass_from_args(TrainConfig, args, PROFILES[args.profile])
    if args.draws < 2 or args.sequences < 1:
        raise ConfigError("--draws must be >= 2 and --sequences >= 1")
    model = RADDModel.from_pretrained(args.model).eval()
    if args.zero_shot:
        from radd.paper_data import load_zero_shot

        seqs = load_zero_shot(args.zero_shot, cfg, args.data_root)
    else:
        seqs = load_corpus(cfg, args.data_root)["valid"]
    seqs = torch.as_tensor(seqs[: args.sequences])
    res = estimate_bound(
        model, seqs, args.estimator, make_schedule(cfg.schedule), args.draws, seed=args.seed
    )
    print(json.dumps(res, indent=2))


def _cmd_sample(args) -> None:
    from radd.data import ByteTokenizer
    from radd.model import RADDModel
    from radd.sampler import sample, sample_ordered
    from radd.schedule import LogLinearSchedule

    model = RADDModel.from_pretrained(args.model).eval()
    length = args.length or model.length
    if args.tokenizer:
        from radd.paper_data import load_tokenizer

        tok = load_tokenizer(args.tokenizer)
        encode, decode = tok.encode, tok.decode
    else:
        tok = ByteTokenizer()
        encode, decode = tok.encode, tok.decode
    fixed = torch.full((1, length), -1)
    prefix, suffix = encode(args.prefix), encode(args.suffix)
    if len(prefix) + len(suffix) > length:
        raise ConfigError(
            f"--prefix and --suffix need {len(prefix) + len(suffix)} tokens; "
            f"the sample has {length}"
        )
    fixed[0, : len(prefix)] = torch.tensor(prefix, dtype=torch.long)
    if suffix:
        fixed[0, length - len(suffix) :] = torch.tensor(suffix, dtype=torch.long)
    g = torch.Generator().manual_seed(args.seed)
    if args.ordered:
        out = sample_ordered(model, args.n, length, fixed=fixed, generator=g)
    else:
        out = sample(
            model,
            args.n,
            length,
            args.steps,
            LogLinearSchedule(),
            args.method,
            cache=not args.no_cache,
            fixed=fixed,
            generator=g,
        )
    for i, row in enumerate(out.tokens):
        print(f"--- sample {i} (NFE {int(out.nfe[i])}) ---")
        print(decode(row.tolist()))
    print(f"--- {args.n} samples in {out.seconds:.2f} s, {out.calls} batched network calls")


def _cmd_reproduce(args) -> None:
    from radd.reproduce import QUICK, ReproduceConfig, reproduce

    torch.set_num_threads(1)
    rc = dataclass_from_args(ReproduceConfig, args, QUICK if args.quick else None)
    name = "reproduce-quick.json" if args.quick else "reproduce.json"
    reproduce(rc, args.out, record_name=name)


def _cmd_report(args) -> None:
    from reprozoo.results import render_record, update_readme_section

    results = Path(args.results)
    records = sorted(results.glob("*.json"))
    records = [r for r in records if not r.name.endswith("-quick.json")]
    if not records:
        raise ConfigError(f"no result records in {results}; run `radd reproduce` first")
    readme = Path(args.readme)
    import os

    prefix = os.path.relpath(results, readme.parent) + "/"
    parts = [render_record(json.loads(r.read_text()), figure_prefix=prefix) for r in records]
    update_readme_section(readme, "\n".join(parts))
    print(f"updated {readme} from {len(records)} record(s)")


def _cmd_bench(args) -> None:
    from radd.bench import run_bench

    run_bench(args.model_size, args.length, args.steps, args.batch, record=args.record)


def _main(argv=None) -> int:
    args = _build_parser().parse_args(argv)
    commands = {
        "train": _cmd_train,
        "eval": _cmd_eval,
        "sample": _cmd_sample,
        "reproduce": _cmd_reproduce,
        "report": _cmd_report,
        "bench": _cmd_bench,
    }
    try:
        commands[args.command](args)
    except ValueError as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(str(exc)) from exc
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
