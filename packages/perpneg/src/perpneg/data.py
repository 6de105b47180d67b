"""Procedurally generated "turntable" images with attributes, views and captions (spec §6b).

A 16×16 RGB image shows a yellow subject (circle, square or triangle) seen from the front (two
eyes and a mouth), the side (one eye and a nose sticking out) or the back (no face, a tail),
optionally wearing a hat whose brim is red or blue. The view prior is front-heavy, and captions
name the view unreliably, so a model trained on them follows view words weakly, as text-to-image
models do. Captions are slot-based: (subject, view, hat, brim), 0 meaning "not mentioned".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

SIZE = 16
SHAPES = ("circle", "square", "triangle")
VIEWS = ("front", "side", "back")
HATS = ("none", "red", "blue")
SLOTS = {"subject": SHAPES, "view": VIEWS, "hat": ("hat",), "brim": ("red", "blue")}

BODY = torch.tensor([0.95, 0.8, 0.2])
INK = torch.tensor([0.05, 0.05, 0.05])
CROWN = torch.tensor([0.35, 0.35, 0.4])
BRIM = {"red": torch.tensor([0.9, 0.1, 0.1]), "blue": torch.tensor([0.1, 0.2, 0.95])}


def _shape_mask(shape: str) -> torch.Tensor:
    """Boolean 10×10 mask of the subject's body."""
    yy, xx = torch.meshgrid(torch.arange(10.0), torch.arange(10.0), indexing="ij")
    if shape == "circle":
        return (yy - 4.5) ** 2 + (xx - 4.5) ** 2 <= 4.9**2
    if shape == "square":
        return torch.ones(10, 10, dtype=torch.bool)
    return (xx - 4.5).abs() <= (yy + 1) * 0.5


def render(shape: int, view: int, hat: int, dx: int = 0, dy: int = 0) -> torch.Tensor:
    """One clean image (3, 16, 16) in [0, 1] for attribute indices, shifted by (dx, dy)."""
    img = torch.ones(3, SIZE, SIZE) * 0.92
    top, left = 5 + dy, 3 + dx
    mask = _shape_mask(SHAPES[shape])
    region = img[:, top : top + 10, left : left + 10]
    region[:, mask] = BODY[:, None]

    def dot(y: int, x: int, colour=INK) -> None:
        yy, xx = top + y, left + x
        if 0 <= yy < SIZE and 0 <= xx < SIZE:
            img[:, yy, xx] = colour

    if VIEWS[view] == "front":
        dot(5, 3), dot(5, 6)
        for x in (3, 4, 5, 6):
            dot(8, x)
    elif VIEWS[view] == "side":
        dot(5, 6)
        for x in (10, 11):
            dot(6, x, BODY), dot(7, x, BODY)
    else:
        for y in (7, 8, 9):
            dot(y, -1, INK), dot(y, -2, INK)
    if HATS[hat] != "none":
        for y in range(-4, -1):
            for x in range(3, 7):
                dot(y, x, CROWN)
        for x in range(1, 9):
            dot(-1, x, BRIM[HATS[hat]])
    return img


@dataclass(frozen=True)
class GeneratorConfig:
    """The data distribution: priors and how reliably captions name each attribute."""

    view_prior: tuple[float, float, float] = (0.7, 0.2, 0.1)
    hat_prior: tuple[float, float, float] = (0.5, 0.25, 0.25)
    p_subject: float = 0.7
    p_view: float = 0.5
    view_correct: float = 0.4
    p_hat: float = 0.7
    p_brim: float = 0.5
    p_drop: float = 0.15
    noise: float = 0.03


def sample_attributes(n: int, cfg: GeneratorConfig, g: torch.Generator) -> torch.Tensor:
    """(n, 3) int64 attributes (shape, view, hat)."""
    shape = torch.randint(0, 3, (n,), generator=g)
    view = torch.multinomial(torch.tensor(cfg.view_prior), n, replacement=True, generator=g)
    hat = torch.multinomial(torch.tensor(cfg.hat_prior), n, replacement=True, generator=g)
    return torch.stack([shape, view, hat], 1)


_BANK: list[torch.Tensor] = []


def clean_bank() -> torch.Tensor:
    """Every clean image: index ((shape·3 + view)·3 + hat)·9 + shift, shape (243, 3, 16, 16)."""
    if not _BANK:
        shifts = [(dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
        _BANK.append(
            torch.stack(
                [
                    render(s, v, h, dx, dy)
                    for s in range(3)
                    for v in range(3)
                    for h in range(3)
                    for dx, dy in shifts
                ]
            )
        )
    return _BANK[0]


def render_batch(attrs: torch.Tensor, g: torch.Generator, noise: float = 0.03) -> torch.Tensor:
    """Images in [−1, 1] with a random ±1 px shift and a little pixel noise."""
    shift = torch.randint(0, 9, (len(attrs),), generator=g)
    index = ((attrs[:, 0] * 3 + attrs[:, 1]) * 3 + attrs[:, 2]) * 9 + shift
    imgs = clean_bank()[index]
    imgs = imgs + noise * torch.randn(imgs.shape, generator=g)
    return imgs.clamp(0, 1) * 2 - 1


def captions(attrs: torch.Tensor, cfg: GeneratorConfig, g: torch.Generator) -> torch.Tensor:
    """(n, 4) slot captions (subject, view, hat, brim); 0 = slot not mentioned.

    The view word is right with probability `view_correct` and otherwise names one of the two
    other views, which makes view words weak, as in web captions.
    """
    n = len(attrs)

    def coin(p: float) -> torch.Tensor:
        return torch.rand(n, generator=g) < p

    wrong = (attrs[:, 1] + torch.randint(1, 3, (n,), generator=g)) % 3
    view_word = torch.where(coin(cfg.view_correct), attrs[:, 1], wrong)
    has_hat = attrs[:, 2] > 0
    cap = torch.stack(
        [
            torch.where(coin(cfg.p_subject), attrs[:, 0] + 1, 0),
            torch.where(coin(cfg.p_view), view_word + 1, 0),
            torch.where(has_hat & coin(cfg.p_hat), 1, 0),
            torch.where(has_hat & coin(cfg.p_brim), attrs[:, 2], 0),
        ],
        1,
    )
    return torch.where(coin(cfg.p_drop)[:, None], 0, cap)


def parse_caption(text: str) -> torch.Tensor:
    """A slot caption from words, e.g. "square, hat" or "hat, red brim" ("" = unconditional)."""
    cap = torch.zeros(4, dtype=torch.long)
    for word in text.replace(",", " ").split():
        if word in SHAPES:
            cap[0] = SHAPES.index(word) + 1
        elif word in VIEWS:
            cap[1] = VIEWS.index(word) + 1
        elif word == "hat":
            cap[2] = 1
        elif word in ("red", "blue"):
            cap[3] = ("red", "blue").index(word) + 1
        elif word not in ("view", "brim", "wearing", "a", "with"):
            raise ValueError(
                f"unknown caption word {word!r}; known words: "
                f"{', '.join(SHAPES + VIEWS + ('hat', 'red', 'blue'))}"
            )
    return cap
