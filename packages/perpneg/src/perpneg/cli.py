"""Command line of the `perpneg` package.

    perpneg reproduce [--quick] [--part analytic|trained|all]   # embedded default, no download
    perpneg report                                              # README tables from the records
    perpneg train --out runs/perpneg                            # small model (torchrun-able)
    torchrun --nproc-per-node 2 -m perpneg.cli train --out runs/perpneg
    perpneg eval --model runs/perpneg/model                     # B1/B2 tables of a trained model
    perpneg sample --sd-model /models/stable-diffusion-v1-4 --prompt "a boy wearing sunglasses" \
        --negative "sunglasses with black frame" --weight 1.5      # paper scale
    perpneg bench                                               # speed ratios on a tiny SD
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from perpneg.pipeline import PAPER
from perpneg.train import TrainConfig
from perpneg.trained import EvalConfig
from reprozoo.cli import add_common_arguments, run_main
from reprozoo.config import ConfigError, add_dataclass_arguments, dataclass_from_args

PACKAGE_DIR = Path(__file__).resolve().parents[2]
RESULTS = Path("results/perpneg")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="perpneg",
        description="Perp-Neg (Armandpour et al. 2023): perpendicular negative prompts for "
        "diffusion models, with the baselines, a Stable Diffusion pipeline and a reproduction.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("reproduce", help="run the embedded-default reproduction (no download)")
    p.add_argument("--quick", action="store_true", help="tiny settings (seconds; for tests)")
    p.add_argument(
        "--part",
        default="all",
        choices=["analytic", "trained", "all"],
        help="which part to run (default: all)",
    )
    p.add_argument("--out", default=str(RESULTS), help=f"result folder (default: {RESULTS})")
    p.add_argument(
        "--work",
        default="runs/perpneg",
        help="folder for checkpoints and the trained model (default: runs/perpneg)",
    )

    p = sub.add_parser("report", help="write the README results section from the records")
    p.add_argument("--results", default=str(RESULTS), help=f"record folder (default: {RESULTS})")
    p.add_argument(
        "--readme",
        default=str(PACKAGE_DIR / "README.md"),
        help="README to update (default: the package README)",
    )

    p = sub.add_parser("train", help="train the small conditional diffusion model")
    add_dataclass_arguments(p, TrainConfig)
    p.add_argument(
        "--out",
        default="runs/perpneg",
        help="folder for the checkpoint and model/ (default: runs/perpneg); an "
        "existing checkpoint there is resumed",
    )
    p.add_argument("--device", default="auto", help="cpu, cuda, mps or auto (default: auto)")

    p = sub.add_parser("eval", help="classifier + B1/B2 tables for a trained small model")
    p.add_argument("--model", required=True, help="folder written by `perpneg train` (…/model)")
    p.add_argument(
        "--classifier-steps",
        type=int,
        default=300,
        help="training steps of the evaluator (default: 300)",
    )
    add_dataclass_arguments(p, EvalConfig)
    add_common_arguments(p, out_default=str(RESULTS))

    p = sub.add_parser(
        "sample", help="sample images with Perp-Neg (Stable Diffusion or small model)"
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--sd-model",
        help="Stable Diffusion: local diffusers folder or cached id "
        f"(paper: {PAPER.model} with its {PAPER.scheduler} scheduler)",
    )
    src.add_argument("--toy-model", help="small model folder written by `perpneg train`")
    p.add_argument("--prompt", required=True, help="main prompt")
    p.add_argument(
        "--negative", action="append", default=[], help="a negative prompt (repeat for several)"
    )
    p.add_argument(
        "--weight",
        action="append",
        type=float,
        default=[],
        help="weight w ≥ 0 of each negative, in the same order (repeat)",
    )
    p.add_argument(
        "--method",
        default="perpneg",
        choices=["perpneg", "composable", "sd_negative", "cfg"],
        help="guidance rule (default: perpneg)",
    )
    p.add_argument(
        "--azimuth",
        type=float,
        default=None,
        help="view azimuth in degrees (SD only): interpolated view prompts + negatives",
    )
    p.add_argument(
        "--scheduler",
        default=None,
        help="ddim, pndm, euler, euler_a, lms, dpm or ddpm (default: the model's own)",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=PAPER.steps,
        help=f"denoising steps (default = paper: {PAPER.steps})",
    )
    p.add_argument(
        "--scale",
        type=float,
        default=PAPER.scale,
        help=f"guidance scale (default = paper: {PAPER.scale})",
    )
    p.add_argument(
        "--num-images",
        type=int,
        default=PAPER.num_images,
        help=f"images to draw (default = paper: {PAPER.num_images})",
    )
    p.add_argument(
        "--size",
        type=int,
        default=PAPER.size,
        help=f"SD image size in pixels (default = paper: {PAPER.size})",
    )
    add_common_arguments(p, out_default="samples")

    p = sub.add_parser("bench", help="seconds per denoising step vs diffusers' own pipeline")
    p.add_argument("--latent-size", type=int, default=16, help="latent side of the tiny model")
    p.add_argument("--batch", type=int, default=2, help="images per call")
    p.add_argument("--repeats", type=int, default=5, help="timed repetitions (median)")
    p.add_argument(
        "--out",
        default=None,
        help="also write a bench.json record into this folder (e.g. results/perpneg)",
    )
    return parser


def _cmd_reproduce(args) -> None:
    from perpneg.reproduce import reproduce

    started = time.time()
    records = reproduce(args.out, args.work, quick=args.quick, part=args.part)
    for rec in records:
        print(rec["extra"]["headline"])
    print(f"reproduce finished in {time.time() - started:.1f} s; records in {args.out}")


def _cmd_report(args) -> None:
    from reprozoo.results import render_record, update_readme_section

    records = sorted(Path(args.results).glob("*.json"))
    if not records:
        raise ConfigError(f"no result records in {args.results}; run `perpneg reproduce` first")
    prefix = Path(args.results).resolve()
    readme = Path(args.readme).resolve()
    import os

    rel = os.path.relpath(prefix, readme.parent) + "/"
    text = "\n".join(render_record(json.loads(p.read_text()), figure_prefix=rel) for p in records)
    update_readme_section(readme, text)
    print(f"updated {readme} from {len(records)} records")


def _cmd_train(args) -> None:
    from perpneg.train import train_diffusion

    cfg = dataclass_from_args(TrainConfig, args)
    final = train_diffusion(cfg, args.out, device=args.device)
    print(f"model in {final}")


def _cmd_eval(args) -> None:
    from perpneg import trained
    from perpneg.train import load_model, train_classifier
    from reprozoo.results import Table, write_record

    started = time.time()
    cfg = dataclass_from_args(EvalConfig, args)
    unet, encoder = load_model(args.model)
    clf, acc = train_classifier(args.classifier_steps, args.seed)
    if acc < 0.99:
        raise ConfigError(f"classifier accuracy {acc:.4f} < 0.99; raise --classifier-steps")
    rows_b1 = trained.experiment_removal(unet, encoder, clf, cfg)
    rows_b2 = trained.experiment_views(unet, encoder, clf, cfg)
    tables = [
        Table(
            "B1 concept removal", ["method", "keep square∧hat", "no red brim", "success"], rows_b1
        ),
        Table("B2 view success", list(rows_b2[0]), rows_b2),
    ]
    out = Path(args.out) / "eval.json"
    write_record(
        out,
        package="perpneg",
        experiment=f"eval of {args.model}",
        config=asdict(cfg),
        seeds=cfg.seeds,
        tables=tables,
        device="cpu",
        started=started,
        extra={"classifier_accuracy": acc},
    )
    print(f"wrote {out}")


def _cmd_sample(args) -> None:
    import torch

    from reprozoo.runtime import pick_device

    if len(args.negative) != len(args.weight):
        raise ConfigError(
            f"{len(args.negative)} --negative but {len(args.weight)} --weight; give one weight "
            "per negative prompt, in the same order"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(args.seed)
    if args.sd_model:
        from perpneg.pipeline import load_pipeline

        try:
            pipe = load_pipeline(args.sd_model, args.scheduler, device=pick_device(args.device))
        except ValueError as err:
            raise ConfigError(str(err)) from err
        images = pipe(
            args.prompt,
            negative_prompts=args.negative,
            negative_weights=args.weight,
            method=args.method,
            azimuth=args.azimuth,
            num_inference_steps=args.steps,
            guidance_scale=args.scale,
            num_images_per_prompt=args.num_images,
            height=args.size,
            width=args.size,
            generator=g,
        ).images
    else:
        from PIL import Image

        from perpneg.train import load_model
        from perpneg.trained import sample_images

        unet, encoder = load_model(args.toy_model)
        cfg = EvalConfig(
            seeds=(args.seed,), n_samples=args.num_images, steps=args.steps, scale=args.scale
        )
        imgs = sample_images(
            unet, encoder, args.method, args.prompt, args.negative, args.weight, cfg, args.seed
        )
        arr = ((imgs + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
        images = [Image.fromarray(a).resize((128, 128), Image.NEAREST) for a in arr]
    for i, img in enumerate(images):
        img.save(out / f"{args.method}_{i}.png")
    print(f"wrote {len(images)} images to {out}")


def _cmd_bench(args) -> None:
    from perpneg.bench import run_bench
    from reprozoo.results import Table, write_record

    started = time.time()
    text, figures = run_bench(args.latent_size, args.batch, args.repeats)
    print(text)
    if args.out:
        base = figures["per_step"]["diffusers SD, negative prompt"]
        rows = [
            {"pipeline": k, "s/step": v, "× diffusers": v / base}
            for k, v in figures["per_step"].items()
        ]
        rows.append(
            {
                "pipeline": "guidance arithmetic alone (Perp-Neg, K=2)",
                "s/step": figures["arith_s"],
                "× diffusers": figures["arith_s"] / base,
            }
        )
        table = Table(
            f"Seconds per denoising step, tiny random SD (latents {args.latent_size}², batch "
            f"{args.batch}), one process, one thread",
            ["pipeline", "s/step", "× diffusers"],
            rows,
            note=f"guidance arithmetic = {100 * figures['arith_share']:.2f}% of a Perp-Neg "
            "K=2 step. Measured on a shared machine; ratios, not seconds, carry over.",
        )
        write_record(
            Path(args.out) / "bench.json",
            package="perpneg",
            experiment="bench",
            config={"latent_size": args.latent_size, "batch": args.batch, "repeats": args.repeats},
            seeds=[0],
            tables=[table],
            device="cpu",
            started=started,
        )


COMMANDS = {
    "reproduce": _cmd_reproduce,
    "report": _cmd_report,
    "train": _cmd_train,
    "eval": _cmd_eval,
    "sample": _cmd_sample,
    "bench": _cmd_bench,
}


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    COMMANDS[args.command](args)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
