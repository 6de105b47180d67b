"""The guided denoising loop shared by the Stable Diffusion pipeline and the small trained model.

One step evaluates the denoiser on every prompt branch (∅, main, K negatives, J extra
positives), combines the predictions with a rule from `perpneg.guidance`, and hands the result
to a diffusers scheduler. By default all branches go through the network in ONE batched call;
`batch_branches=False` makes one call per branch in the order of the official 2D code (main,
negatives, then ∅), which must give the same images.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    LMSDiscreteScheduler,
    PNDMScheduler,
)

from perpneg.guidance import METHODS, Weight, combine

SCHEDULERS = {
    "ddim": DDIMScheduler,
    "pndm": PNDMScheduler,
    "euler": EulerDiscreteScheduler,
    "euler_a": EulerAncestralDiscreteScheduler,
    "lms": LMSDiscreteScheduler,
    "dpm": DPMSolverMultistepScheduler,
    "ddpm": DDPMScheduler,
}


def make_scheduler(name: str, config) -> object:
    """A scheduler of the named kind built from another scheduler's config (or a dict)."""
    if name not in SCHEDULERS:
        raise ValueError(
            f"unknown scheduler {name!r}; choose one of {', '.join(sorted(SCHEDULERS))}"
        )
    return SCHEDULERS[name].from_config(config)


@dataclass
class GuidanceSpec:
    """What to combine at every step.

    `cond` holds the text embeddings, each (B, L, D) for the B samples: `uncond`, `pos`, the
    negatives and the extra positives. Weights may be numbers or (B,) tensors.
    """

    uncond: torch.Tensor
    pos: torch.Tensor
    negs: Sequence[torch.Tensor] = ()
    neg_weights: Sequence[Weight] = ()
    extra_pos: Sequence[torch.Tensor] = ()
    extra_pos_weights: Sequence[Weight] = ()
    method: str = "perpneg"
    scale: float = 7.5
    per_sample: bool = True
    perpneg_kwargs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown guidance method {self.method!r}; choose one of {METHODS}")
        if len(self.negs) != len(self.neg_weights):
            raise ValueError(
                f"{len(self.negs)} negative prompts but {len(self.neg_weights)} negative "
                f"weights; give one weight per negative prompt"
            )
        if len(self.extra_pos) != len(self.extra_pos_weights):
            raise ValueError(
                f"{len(self.extra_pos)} extra positive prompts but "
                f"{len(self.extra_pos_weights)} weights; give one weight per extra prompt"
            )
        if self.extra_pos and self.method != "perpneg":
            raise ValueError("extra positive prompts are only defined for method='perpneg'")

    def branches(self) -> list[torch.Tensor]:
        """Embeddings to evaluate, in order; only those the method needs."""
        if self.method == "cfg" or not self.negs:
            return [self.uncond, self.pos]
        if self.method == "sd_negative":
            return [self.pos, *self.negs]
        return [self.uncond, self.pos, *self.negs, *self.extra_pos]

    def guide(self, preds: list[torch.Tensor]) -> torch.Tensor:
        """Combine the branch predictions returned in the order of `branches()`."""
        if self.method == "cfg" or not self.negs:
            return combine("cfg", preds[0], preds[1], [], [], self.scale)
        if self.method == "sd_negative":
            return combine("sd_negative", None, preds[0], preds[1:], self.neg_weights, self.scale)
        k = len(self.negs)
        eps_u, eps_pos, negs, extras = preds[0], preds[1], preds[2 : 2 + k], preds[2 + k :]
        kwargs = dict(self.perpneg_kwargs)
        if self.method == "perpneg":
            kwargs.update(
                extra_pos=extras,
                extra_pos_weights=self.extra_pos_weights,
                per_sample=self.per_sample,
            )
        return combine(self.method, eps_u, eps_pos, negs, self.neg_weights, self.scale, **kwargs)


Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def predict_branches(
    denoiser: Denoiser, x: torch.Tensor, t, embeds: list[torch.Tensor], batch_branches: bool
) -> list[torch.Tensor]:
    """Noise predictions for every embedding at (x, t): one batched call or one per branch."""
    if batch_branches:
        # A per-sample timestep vector (score distillation) is repeated for every branch.
        t_all = t.repeat(len(embeds)) if torch.is_tensor(t) and t.ndim == 1 else t
        out = denoiser(torch.cat([x] * len(embeds)), t_all, torch.cat(embeds))
        return list(out.chunk(len(embeds)))
    # Official 2D order: each prompt one at a time, the unconditional branch last.
    order = list(range(1, len(embeds))) + [0]
    preds: dict[int, torch.Tensor] = {i: denoiser(x, t, embeds[i]) for i in order}
    return [preds[i] for i in range(len(embeds))]


def step_kwargs(scheduler, generator, eta: float) -> dict:
    """`eta` and `generator` for the schedulers whose `step` accepts them."""
    params = set(inspect.signature(scheduler.step).parameters)
    kwargs = {}
    if "eta" in params:
        kwargs["eta"] = eta
    if "generator" in params:
        kwargs["generator"] = generator
    return kwargs


def denoise(
    denoiser: Denoiser,
    scheduler,
    latents: torch.Tensor,
    spec: GuidanceSpec,
    num_inference_steps: int,
    generator: torch.Generator | None = None,
    eta: float = 0.0,
    batch_branches: bool = True,
    progress: Callable | None = None,
) -> torch.Tensor:
    """Run the reverse process from `latents` (already scaled by `init_noise_sigma`)."""
    scheduler.set_timesteps(num_inference_steps, device=latents.device)
    embeds = spec.branches()
    extra = step_kwargs(scheduler, generator, eta)
    timesteps = scheduler.timesteps
    for t in progress(timesteps) if progress is not None else timesteps:
        x_in = scheduler.scale_model_input(latents, t)
        preds = predict_branches(denoiser, x_in, t, embeds, batch_branches)
        eps_hat = spec.guide(preds)
        latents = scheduler.step(eps_hat, t, latents, **extra, return_dict=False)[0]
    return latents


def unet_denoiser(unet) -> Denoiser:
    """Wrap a `UNet2DConditionModel` as denoiser(x, t, encoder_hidden_states) -> prediction."""

    def fn(x: torch.Tensor, t, cond: torch.Tensor) -> torch.Tensor:
        return unet(x, t, encoder_hidden_states=cond, return_dict=False)[0]

    return fn
