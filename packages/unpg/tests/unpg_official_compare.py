"""Numeric comparison with the official UNPG ``head.py`` / ``build.py`` (spec section 7.2).

Not a test module: ``test_golden.py`` imports it. ``official_losses(repo)`` loads the official
ArcFace/CosFace/UNPG classes and the two pair functions from a local checkout (no code is
vendored; the functions are taken out of ``build.py`` with ``ast`` so its other imports are not
needed). ``our_losses()`` computes the same quantities with this package.
"""

import ast
import importlib.util
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from unpg.heads import ArcFace, CosFace
from unpg.method import UNPGLoss

B, D, C, LABELS, SEED = 16, 8, 10, 5, 2022
CASES = [("arcface", 0.5), ("cosface", 0.5), ("cosface", 0.35)]
WHISKERS = [0.0, 1.0, 1.5, 1e9]


def inputs():
    """Seeded float64 inputs inside the region where the official ArcFace needs no fallback."""
    g = torch.Generator().manual_seed(SEED)
    while True:
        x = torch.randn(B, D, generator=g, dtype=torch.float64)
        y = torch.randint(0, LABELS, (B,), generator=g)
        bound = math.sqrt(6.0 / (C + D))  # Xavier-uniform
        w = (torch.rand(C, D, generator=g, dtype=torch.float64) * 2 - 1) * bound
        cos_y = (F.normalize(x) @ F.normalize(w).t()).gather(1, y[:, None])
        if (cos_y > math.cos(math.pi - 0.5)).all():
            return x, y, w


def _grads(loss_fn, x, w_param):
    x = x.clone().requires_grad_(True)
    loss = loss_fn(x)
    gx, gw = torch.autograd.grad(loss, [x, w_param])
    return loss.item(), gx, gw


def our_losses():
    x, y, w = inputs()
    out = {}
    for head_name, m in CASES:
        for r in WHISKERS:
            cls = ArcFace if head_name == "arcface" else CosFace
            head = cls(D, C, s=64.0, m=m).double()
            with torch.no_grad():
                head.weight.copy_(w)
            loss = UNPGLoss(head, whisker=r)
            out[f"{head_name}-m{m}-r{r}"] = _grads(lambda v, loss=loss: loss(v, y), x, head.weight)
    return out


def _load_official(repo: Path):
    spec = importlib.util.spec_from_file_location(
        "official_head", repo / "recognition/models/head.py"
    )
    head = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(head)
    tree = ast.parse((repo / "recognition/models/build.py").read_text())
    wanted = {"box_and_whisker_algorithm", "convert_label_to_similarity"}
    nodes = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in wanted]
    namespace = {"torch": torch}
    exec(compile(ast.Module(body=nodes, type_ignores=[]), "build.py", "exec"), namespace)
    return head, namespace["box_and_whisker_algorithm"], namespace["convert_label_to_similarity"]


def official_losses(repo):
    head_mod, whisker_fn, pairs_fn = _load_official(Path(repo))
    x, y, w = inputs()
    out = {}
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        for head_name, m in CASES:
            for r in WHISKERS:
                cls = head_mod.ArcFace if head_name == "arcface" else head_mod.CosFace
                head = cls(D, C, s=64.0, m=m)
                with torch.no_grad():
                    head.weight.copy_(w)
                unpg = head_mod.UNPG(s=64.0, wisk=r)

                def loss_fn(v, head=head, unpg=unpg, r=r):
                    cos = head(v, y)
                    _, sn = pairs_fn(F.normalize(v), y)
                    return unpg(cos, whisker_fn(sn, r).unsqueeze(0), y)

                out[f"{head_name}-m{m}-r{r}"] = _grads(loss_fn, x, head.weight)
    finally:
        torch.set_default_dtype(previous)
    return out
