"""Command line of the `unpg` package.

unpg train --profile synth --head arcface --unpg          # embedded SynthID, CPU minutes
unpg train --profile paper --data-root /data --head cosface --unpg   # MS1MV2 RecordIO
torchrun --nproc-per-node 2 -m unpg.cli train --profile synth --unpg
unpg eval --model runs/unpg/model --sets synth
unpg eval --model runs/unpg/model --sets lfw cfp_fp agedb_30 --data-root /data
unpg reproduce [--quick]        # the SynthID table: ArcFace/CosFace ± UNPG, 3 seeds
unpg report                     # README table and figures from results/unpg/*.json
unpg bench                      # training step ± UNPG, evaluation pairs per second
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from reprozoo.checkpoint import save_pretrained_atomic
from reprozoo.cli import add_common_arguments, run_main
from reprozoo.config import add_dataclass_arguments, config_to_dict, dataclass_from_args
from reprozoo.data import require_layout, resolve_data_root
from reprozoo.results import atomic_write_json
from reprozoo.runtime import cleanup_distributed, get_logger, seed_everything, setup_distributed
from unpg.config import PROFILES, TrainConfig

log = get_logger("unpg.cli")
BIN_SETS = ("lfw", "cfp_fp", "agedb_30", "calfw", "cplfw")
MS1M_SOURCE = (
    "the insightface dataset zoo (MS1M-ArcFace / 'faces_emore', with train.rec, train.idx and "
    "the .bin verification sets): https://github.com/deepinsight/insightface/wiki/Dataset-Zoo"
)
IJB_SOURCE = (
    "the insightface IJB-B/IJB-C test release (IJB_release: meta/ and aligned loose crops); "
    "IJB itself is licensed by NIST"
)


def _profile(argv_profile: str) -> TrainConfig:
    return PROFILES[argv_profile]


def _training_source(cfg: TrainConfig, args):
    if cfg.dataset == "synth":
        from unpg.synth import SynthConfig, generate
        from unpg.train import TensorSource

        train_split, _ = generate(SynthConfig(image_size=cfg.image_size))
        return TensorSource(train_split.images, train_split.labels)
    from unpg.recordio import RecordFaceSource

    root = resolve_data_root(args.data_root)
    rec = Path(cfg.rec_name)
    require_layout(root, "MS1MV2 RecordIO", [f"{rec}.rec", f"{rec}.idx"], MS1M_SOURCE)
    return RecordFaceSource(root / f"{rec}.rec", root / f"{rec}.idx")


def cmd_train(args) -> int:
    from unpg.train import train

    cfg = dataclass_from_args(TrainConfig, args, base=_profile(args.profile))
    dist = setup_distributed(args.device)
    seed_everything(args.seed, args.deterministic)
    try:
        source = _training_source(cfg, args)
        out = Path(args.out)
        trainee, history = train(cfg, source, out, seed=args.seed, dist=dist)
        if dist.is_main:
            save_pretrained_atomic(trainee.backbone, out / "model")
            atomic_write_json(out / "train_config.json", config_to_dict(cfg))
            log.info("saved the backbone to %s (IResNet.from_pretrained)", out / "model")
    finally:
        cleanup_distributed()
    return 0


def cmd_eval(args) -> int:
    from reprozoo.metrics import kfold_pair_accuracy
    from unpg import evaluate as ev
    from unpg.model import IResNet

    with contextlib.redirect_stdout(sys.stderr):  # keep stdout for the JSON result
        model = IResNet.from_pretrained(args.model)
    results = {}
    for name in args.sets:
        if name == "synth":
            from unpg.synth import SynthConfig, generate

            _, test = generate(SynthConfig(image_size=args.synth_size))
            emb = ev.embed(model, test.images, flip=args.flip)
            scores, same = ev.all_pair_scores(emb, test.identity)
            results[name] = ev.verification_report(scores, same)
            pairs = ev.kfold_pairs(test.identity, test.family, test.pose, seed=0)
            results[name].update(ev.kfold_report(emb, *pairs))
        elif name in BIN_SETS:
            from unpg.recordio import load_bin

            root = resolve_data_root(args.data_root)
            require_layout(
                root, f"{name} verification set", [f"faces_emore/{name}.bin"], MS1M_SOURCE
            )
            images, issame = load_bin(root / "faces_emore" / f"{name}.bin")
            emb = ev.embed(model, images, flip=args.flip)
            scores = (emb[0::2] * emb[1::2]).sum(1).numpy()
            mean, std = kfold_pair_accuracy(scores, issame, folds=10)
            best = max(((scores >= t) == issame).mean() for t in np.r_[scores, np.inf])
            results[name] = {"acc10": mean, "acc10_std": std, "acc_best_th": float(best)}
        elif name in ("ijbb", "ijbc"):
            results[name] = _eval_ijb(model, name, args)
        else:
            raise SystemExit(
                f"unknown set {name!r}; choose synth, {', '.join(BIN_SETS)}, ijbb, ijbc"
            )
        log.info("%s: %s", name, json.dumps(results[name]))
    print(json.dumps(results, indent=2))
    return 0


def _eval_ijb(model, name: str, args) -> dict:
    from unpg import evaluate as ev
    from unpg.recordio import decode_image, read_ijb_meta, to_tensor

    upper = name.upper()
    root = resolve_data_root(args.data_root) / upper
    require_layout(
        root.parent,
        f"{upper} (insightface release)",
        [
            f"{upper}/meta/{name}_face_tid_mid.txt",
            f"{upper}/meta/{name}_template_pair_label.txt",
            f"{upper}/aligned",
        ],
        IJB_SOURCE,
    )
    names, tid, mid, t1, t2, label = read_ijb_meta(root, name)
    images = torch.stack(
        [to_tensor(decode_image((root / "aligned" / n).read_bytes(), str(n))) for n in names]
    )
    emb = ev.embed(model, images, flip=args.flip)
    feats = ev.pool_templates(emb, tid, mid)
    scores = np.array([float(feats[a] @ feats[b]) for a, b in zip(t1, t2, strict=True)])
    return ev.verification_report(scores, label, fars=(1e-6, 1e-5, 1e-4, 1e-3))


def cmd_reproduce(args) -> int:
    from unpg.reproduce import SETTINGS, ReproConfig, reproduce

    torch.set_num_threads(args.threads)
    setting = "quick" if args.quick else args.setting
    name, cfg = SETTINGS[setting]
    cfg = cfg or ReproConfig()
    if args.seeds:
        cfg = dataclasses.replace(cfg, seeds=tuple(args.seeds))
    if args.heads:
        cfg = dataclasses.replace(cfg, heads=tuple(args.heads))
    record = reproduce(cfg, args.out, args.results, experiment=name)
    print(record["extra"]["headline"])
    return 0


def cmd_report(args) -> int:
    from reprozoo.results import render_record, update_readme_section

    records = [
        p for p in sorted(Path(args.results).glob("synthid*.json")) if p.stem != "synthid_quick"
    ]
    if not records:
        raise SystemExit(f"no results/unpg/synthid.json under {args.results}: run `unpg reproduce`")
    readme = Path(args.readme)
    prefix = os.path.relpath(Path(args.results).resolve(), readme.parent.resolve())
    text = "\n".join(render_record(json.loads(p.read_text()), f"{prefix}/") for p in records)
    update_readme_section(readme, text)
    print(f"updated {readme}")
    return 0


def cmd_bench(args) -> int:
    from unpg.bench import run_bench

    torch.set_num_threads(args.threads)
    print(run_bench(batch_size=args.batch_size, classes=args.classes, steps=args.steps))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unpg",
        description="UNPG (BMVC 2022): unified negative pair generation for face recognition.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "train",
        help="train a backbone + margin head (+UNPG)",
        description="Train; resumes from <out>/checkpoint when it exists.",
    )
    p.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="synth",
        help="base setting: paper (MS1MV2, IResNet-100), synth (SynthID on CPU) or "
        "smoke (a few steps); options below override it (default: synth)",
    )
    add_dataclass_arguments(p, TrainConfig)
    add_common_arguments(p, out_default="runs/unpg")
    p.set_defaults(fn=cmd_train)

    p = sub.add_parser("eval", help="verification metrics of a saved backbone")
    p.add_argument("--model", required=True, help="folder written by `unpg train` (<out>/model)")
    p.add_argument(
        "--sets",
        nargs="+",
        default=["synth"],
        help=f"synth, {', '.join(BIN_SETS)}, ijbb, ijbc (default: synth)",
    )
    p.add_argument(
        "--flip",
        action="store_true",
        help="sum the embeddings of the image and its mirror (insightface)",
    )
    p.add_argument("--synth-size", type=int, default=24, help="SynthID image side (default 24)")
    add_common_arguments(p)
    p.set_defaults(fn=cmd_eval)

    p = sub.add_parser("reproduce", help="the embedded SynthID reproduction table")
    p.add_argument("--quick", action="store_true", help="tiny version for tests (~30 s)")
    p.add_argument(
        "--setting",
        choices=["default", "hard"],
        default="default",
        help="default: the calibrated SynthID grid (ArcFace and CosFace, 3 seeds); "
        "hard: the spec's original difficulty, ArcFace only (default: default)",
    )
    p.add_argument("--seeds", type=int, nargs="+", help="override the seeds (default 0 1 2)")
    p.add_argument("--heads", nargs="+", help="override the heads (default arcface cosface)")
    p.add_argument("--results", default="results/unpg", help="record folder (default: %(default)s)")
    p.add_argument(
        "--out",
        default="runs/unpg-reproduce",
        help="run folder with per-run caches (default: %(default)s)",
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    p.set_defaults(fn=cmd_reproduce)

    p = sub.add_parser("report", help="write the README results section from the records")
    p.add_argument("--results", default="results/unpg", help="record folder (default: %(default)s)")
    p.add_argument("--readme", default="packages/unpg/README.md", help="(default: %(default)s)")
    p.set_defaults(fn=cmd_report)

    p = sub.add_parser("bench", help="training step ± UNPG and evaluation throughput")
    p.add_argument("--batch-size", type=int, default=512, help="batch size (default: 512)")
    p.add_argument("--classes", type=int, default=2000, help="classes C (default: 2000)")
    p.add_argument("--steps", type=int, default=5, help="timed repeats (default: 5)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    p.set_defaults(fn=cmd_bench)
    return parser


def _main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.fn(args)


def main(argv: list[str] | None = None) -> int:
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
