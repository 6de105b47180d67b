"""Paper scale: CIFAR-10-C / CIFAR-100-C / ImageNet-C from a data root, the paper's networks.

Layouts read (under `--data-root`, default `$REPROZOO_DATA`):

    CIFAR-10-C/<corruption>.npy, CIFAR-10-C/labels.npy      (uint8 N×32×32×3, severity blocks)
    CIFAR-100-C/<corruption>.npy, CIFAR-100-C/labels.npy
    ImageNet-C/<corruption>/<severity>/<wnid>/<image>.JPEG
    cifar-10-batches-py/data_batch_{1..5}, cifar-100-python/train   (SWAG fine-tuning)
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from petal.architectures import WideResNet, build_architecture, load_classifier
from petal.config import AdaptConfig
from petal.corruptions import CORRUPTIONS
from petal.data import Domain
from petal.method import Posterior, build_adapter
from petal.stream import StreamResult, run_stream
from petal.train import SourceConfig, fit_swag_diagonal
from reprozoo.checkpoint import CheckpointError
from reprozoo.data import require_layout, resolve_data_root
from reprozoo.results import atomic_write_json
from reprozoo.runtime import get_logger, pick_device

LOG = get_logger("petal")
CIFAR_C_SOURCE = (
    "Hendrycks & Dietterich: CIFAR-10-C https://zenodo.org/record/2535967, "
    "CIFAR-100-C https://zenodo.org/record/3555552"
)
IMAGENET_C_SOURCE = "Hendrycks & Dietterich: ImageNet-C https://zenodo.org/record/2235448"
CIFAR_SOURCE = "https://www.cs.toronto.edu/~kriz/cifar.html (python version)"
DATASETS = {  # name → (folder, classes, default architecture)
    "cifar10": ("CIFAR-10-C", 10, "wrn-28-10"),
    "cifar100": ("CIFAR-100-C", 100, "resnext-29"),
    "imagenet": ("ImageNet-C", 1000, "resnet-50"),
}


def make_architecture(name: str, num_classes: int) -> torch.nn.Module:
    """A paper architecture, or `wrn-D-W` for any WideResNet (small ones for smoke tests)."""
    match = re.fullmatch(r"wrn-(\d+)-(\d+)", name)
    if match and name != "wrn-28-10":
        return WideResNet(int(match[1]), int(match[2]), num_classes)
    return build_architecture(name, num_classes)


def _dataset(name: str) -> tuple[str, int, str]:
    if name not in DATASETS:
        raise ValueError(f"unknown paper dataset {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name]


def load_cifar_c(root, dataset: str, corruption: str, severity: int, n: int) -> Domain:
    """The first n images of one severity block of a CIFAR-C corruption (no shuffling)."""
    folder, _, _ = _dataset(dataset)
    root = require_layout(
        resolve_data_root(root),
        folder,
        [f"{folder}/labels.npy"] + [f"{folder}/{c}.npy" for c in CORRUPTIONS],
        CIFAR_C_SOURCE,
    )
    images = np.load(root / folder / f"{corruption}.npy", mmap_mode="r")
    labels = np.load(root / folder / "labels.npy")
    if images.ndim != 4 or images.shape[1:] != (32, 32, 3) or len(images) % 5:
        raise ValueError(
            f"{root / folder / corruption}.npy has shape {images.shape}; expected "
            "(5·N, 32, 32, 3) uint8, severity blocks of N images"
        )
    block = len(images) // 5
    lo = (severity - 1) * block
    x = torch.from_numpy(np.array(images[lo : lo + min(n, block)]))
    y = torch.from_numpy(labels[lo : lo + min(n, block)].astype(np.int64))
    return Domain(corruption, severity, x.permute(0, 3, 1, 2).float().div(255.0), y)


def load_imagenet_c(root, corruption: str, severity: int, n: int) -> Domain:
    """n images of ImageNet-C (sorted file order), Resize 256 → CenterCrop 224."""
    import torchvision.transforms.functional as TF

    root = require_layout(
        resolve_data_root(root),
        "ImageNet-C",
        [f"ImageNet-C/{c}/{severity}/*/*" for c in CORRUPTIONS],
        IMAGENET_C_SOURCE,
    )
    folder = root / "ImageNet-C" / corruption / str(severity)
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    files = sorted((f, i) for i, c in enumerate(classes) for f in (folder / c).iterdir())
    picks = [files[j] for j in np.linspace(0, len(files) - 1, min(n, len(files))).astype(int)]
    xs = []
    for path, _ in picks:
        img = TF.center_crop(TF.resize(Image.open(path).convert("RGB"), 256), 224)
        xs.append(TF.to_tensor(img))
    y = torch.tensor([i for _, i in picks])
    return Domain(corruption, severity, torch.stack(xs), y)


def load_cifar_train(root, dataset: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The CIFAR training images (ToTensor only) for the SWAG fine-tuning."""
    root = resolve_data_root(root)
    if dataset == "cifar10":
        files = [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)]
        key = b"labels"
    elif dataset == "cifar100":
        files, key = ["cifar-100-python/train"], b"fine_labels"
    else:
        raise ValueError("paper-scale SWAG here covers cifar10 and cifar100 (spec 1.3)")
    require_layout(root, dataset.upper(), files, CIFAR_SOURCE)
    xs, ys = [], []
    for f in files:
        with open(root / f, "rb") as fh:
            batch = pickle.load(fh, encoding="bytes")
        xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(batch[key], dtype=np.int64))
    x = torch.from_numpy(np.concatenate(xs)).float().div(255.0)
    return x, torch.from_numpy(np.concatenate(ys))


def swag_paper(args) -> Path:
    """`petal swag --scale paper`: the official CIFAR recipe (spec 1.3) from a checkpoint."""
    _, classes, default_arch = _dataset(args.dataset)
    arch = args.arch or default_arch
    model = load_classifier(make_architecture(arch, classes), args.model).eval()
    x, y = load_cifar_train(args.data_root, args.dataset)
    device = pick_device(args.device)
    model, x, y = model.to(device), x.to(device), y.to(device)
    cfg = SourceConfig(
        swag_epochs=5, swag_lr=8e-4, swa_lr=0.01, swa_anneal_epochs=3, swag_batch_size=200
    )
    mean_model, posterior, count = fit_swag_diagonal(model, x, y, cfg, seed=args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.contiguous().cpu() for k, v in model.state_dict().items()},
        str(out / "source.safetensors"),
    )
    save_file(
        {k: v.contiguous().cpu() for k, v in mean_model.state_dict().items()},
        str(out / "swag_mean.safetensors"),
    )
    save_file(
        {n: v.contiguous().cpu() for n, v in zip(posterior.names, posterior.var(), strict=True)},
        str(out / "swag_var.safetensors"),
    )
    atomic_write_json(
        out / "paper.json",
        {"arch": arch, "dataset": args.dataset, "snapshots": count, "checkpoint": str(args.model)},
    )
    LOG.info("paper-scale SWAG posterior (%d snapshots) written to %s", count, out)
    return out


def load_paper_source(folder: str | Path):
    """Source model, SWAG mean model and posterior written by `petal swag --scale paper`."""
    folder = Path(folder)
    meta_path = folder / "paper.json"
    if not meta_path.is_file():
        raise CheckpointError(
            f"no paper-scale posterior at {folder} (expected paper.json, "
            "source/swag_mean/swag_var .safetensors); run "
            "`petal swag --scale paper --model CKPT --out FOLDER` first"
        )
    meta = json.loads(meta_path.read_text())
    _, classes, _ = _dataset(meta["dataset"])
    models = []
    for name in ("source", "swag_mean"):
        m = make_architecture(meta["arch"], classes)
        load_classifier(m, folder / f"{name}.safetensors")
        models.append(m.eval())
    var = load_file(str(folder / "swag_var.safetensors"))
    mean = {n: p.detach() for n, p in models[1].named_parameters()}
    return models[0], models[1], Posterior(mean, var), meta


def adapt_paper(args, cfg: AdaptConfig) -> StreamResult:
    """One method over the 15 corruptions at severity 5 (standard order) at paper scale."""
    source, mean_model, posterior, meta = load_paper_source(args.source)
    if meta["dataset"] != args.dataset:
        raise CheckpointError(
            f"{args.source} holds a {meta['dataset']} posterior, not {args.dataset}"
        )
    if args.dataset == "imagenet":
        domains = [load_imagenet_c(args.data_root, c, 5, args.n_examples) for c in CORRUPTIONS]
    else:
        domains = [
            load_cifar_c(args.data_root, args.dataset, c, 5, args.n_examples) for c in CORRUPTIONS
        ]
    start = mean_model if cfg.method.startswith("petal") else source
    adapter = build_adapter(start, cfg, seed=args.seed, posterior=posterior)
    adapter.to(pick_device(args.device))
    return run_stream(
        adapter,
        domains,
        cfg.batch_size,
        checkpoint=Path(args.out) / "state",
        checkpoint_every=args.checkpoint_every,
        config={
            "method": cfg.method,
            "seed": args.seed,
            "dataset": args.dataset,
            "source": str(args.source),
        },
        desc=cfg.method,
    )
