"""`StableDiffusionPerpNegPipeline`: Stable Diffusion with Perp-Neg on the current diffusers API.

    from perpneg.pipeline import load_pipeline
    pipe = load_pipeline("/models/stable-diffusion-v1-4", scheduler="pndm")
    image = pipe("a boy wearing sunglasses", negative_prompts=["sunglasses with black frame"],
                 negative_weights=[1.5], generator=torch.Generator().manual_seed(0)).images[0]

It is a `StableDiffusionPipeline` (same components, `save_pretrained`/`from_pretrained`) whose
`__call__` evaluates ∅, the main prompt, K weighted negatives and J extra positives in one
batched UNet call per step and combines them with Perp-Neg or one of the baselines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline
from diffusers.pipelines.stable_diffusion import StableDiffusionPipelineOutput

from perpneg.sampling import SCHEDULERS, GuidanceSpec, denoise, make_scheduler, unet_denoiser
from perpneg.views import view_mix, view_prompts
from reprozoo.config import ConfigError


@dataclass(frozen=True)
class PaperProfile:
    """The official 2D settings (spec §2.1): the `paper` profile of `perpneg sample`."""

    model: str = "CompVis/stable-diffusion-v1-4"
    scheduler: str = "pndm"
    steps: int = 50
    scale: float = 7.5
    size: int = 512
    num_images: int = 4
    seed: int = 0
    negative_weight: float = 1.5

    def __post_init__(self) -> None:
        if self.scheduler not in SCHEDULERS:
            raise ConfigError(
                f"unknown scheduler {self.scheduler!r}; choose one of {sorted(SCHEDULERS)}"
            )
        if self.steps < 1 or self.size % 8 or self.num_images < 1:
            raise ConfigError("steps ≥ 1, size a multiple of 8 and num_images ≥ 1 are required")
        if self.scale <= 1:
            raise ConfigError(f"guidance scale must be > 1, got {self.scale}")


PAPER = PaperProfile()


class StableDiffusionPerpNegPipeline(StableDiffusionPipeline):
    """Stable Diffusion sampling with perpendicular negative prompts (Perp-Neg)."""

    def _embed(self, texts: Sequence[str], clip_skip: int | None) -> list[torch.Tensor]:
        device = self._execution_device
        out = []
        for text in texts:
            emb, _ = self.encode_prompt(text, device, 1, False, clip_skip=clip_skip)
            out.append(emb)
        return out

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | None = None,
        negative_prompts: Sequence[str] = (),
        negative_weights: Sequence[float] = (),
        extra_prompts: Sequence[str] = (),
        extra_weights: Sequence[float] = (),
        method: str = "perpneg",
        uncond_prompt: str = "",
        azimuth: float | None = None,
        view_schedule: str = "stable_dreamfusion",
        height: int | None = None,
        width: int | None = None,
        num_inference_steps: int = 50,
        guidance_scale: float = 7.5,
        num_images_per_prompt: int = 1,
        eta: float = 0.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompts_embeds: Sequence[torch.Tensor] | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        batch_branches: bool = True,
        per_sample: bool = True,
        clip_skip: int | None = None,
    ):
        """Generate images.

        Args:
            prompt: the main prompt P (or give `prompt_embeds` of shape (1, L, D)).
            negative_prompts / negative_weights: K negative prompts and their weights w_i ≥ 0
                (the effective strength is guidance_scale·w_i). Perp-Neg subtracts only the part
                of each negative direction orthogonal to the main one.
            extra_prompts / extra_weights: extra positives, added through their orthogonal
                part (Perp-Neg only).
            method: "perpneg", "composable" (Liu et al.'s NOT), "sd_negative" (negatives
                replace ∅, weights normalised) or "cfg" (negatives ignored).
            uncond_prompt: the text of ∅ (empty string by default).
            azimuth: if given, P is expanded into "P, front/side/back view"; the positive is the
                embedding interpolated at this azimuth (degrees, 0 = front, 180 = back) and the
                two view negatives get the weights of `view_schedule`
                ("stable_dreamfusion" or "threestudio").
            batch_branches: one UNet call for all branches (default) or one per branch.
            per_sample: per-sample inner product (default) or over the whole batch, as the
                official 2D code.
            The remaining arguments are those of `StableDiffusionPipeline`.
        """
        if len(negative_prompts) and negative_prompts_embeds is not None:
            raise ValueError("give either negative_prompts or negative_prompts_embeds, not both")
        n_neg = len(negative_prompts_embeds or negative_prompts)
        if n_neg != len(negative_weights):
            raise ValueError(
                f"{n_neg} negative prompts but {len(negative_weights)} negative weights; "
                "give one weight per negative prompt"
            )
        if len(extra_prompts) != len(extra_weights):
            raise ValueError(
                f"{len(extra_prompts)} extra prompts but {len(extra_weights)} extra weights"
            )
        if (prompt is None) == (prompt_embeds is None):
            raise ValueError("give exactly one of prompt or prompt_embeds")
        if azimuth is not None and prompt is None:
            raise ValueError("azimuth needs a text prompt to build the view prompts from")
        device = self._execution_device

        # 1. Encode ∅, the main prompt, the negatives and the extra positives.
        uncond = self._embed([uncond_prompt], clip_skip)[0]
        negs = list(negative_prompts_embeds or self._embed(negative_prompts, clip_skip))
        neg_w = [float(w) for w in negative_weights]
        if azimuth is not None:
            # Spec §1.6: interpolate view embeddings, negate the other views.
            views = dict(
                zip(
                    view_prompts(prompt),
                    self._embed(view_prompts(prompt).values(), clip_skip),
                    strict=True,
                )
            )
            mix = view_mix(azimuth, view_schedule)
            pos = mix.r * views[mix.first] + (1.0 - mix.r) * views[mix.second]
            negs = [views[v] for v in mix.negatives] + negs
            neg_w = [-w for w in mix.weights] + neg_w
        elif prompt_embeds is not None:
            pos = prompt_embeds.to(device)
        else:
            pos = self._embed([prompt], clip_skip)[0]
        extras = self._embed(extra_prompts, clip_skip)

        b = num_images_per_prompt

        def rep(e: torch.Tensor) -> torch.Tensor:
            return e.to(device).repeat_interleave(b, 0) if e.shape[0] == 1 else e.to(device)

        spec = GuidanceSpec(
            uncond=rep(uncond),
            pos=rep(pos),
            negs=[rep(e) for e in negs],
            neg_weights=neg_w,
            extra_pos=[rep(e) for e in extras],
            extra_pos_weights=[float(v) for v in extra_weights],
            method=method,
            scale=guidance_scale,
            per_sample=per_sample,
        )

        # 2. Initial latents, as StableDiffusionPipeline draws them.
        sample = self.unet.config.sample_size
        sample = sample if isinstance(sample, int) else sample[0]
        height = height or sample * self.vae_scale_factor
        width = width or sample * self.vae_scale_factor
        latents = self.prepare_latents(
            b, self.unet.config.in_channels, height, width, pos.dtype, device, generator, latents
        )

        # 3. Guided reverse process, one batched UNet call per step.
        bar = self.progress_bar(total=num_inference_steps)
        with bar:

            def tick(ts):
                for t in ts:
                    yield t
                    bar.update()

            latents = denoise(
                unet_denoiser(self.unet),
                self.scheduler,
                latents,
                spec,
                num_inference_steps,
                generator=generator,
                eta=eta,
                batch_branches=batch_branches,
                progress=tick,
            )

        # 4. Decode.
        if output_type == "latent":
            images, nsfw = latents, None
        else:
            images = self.vae.decode(
                latents / self.vae.config.scaling_factor, return_dict=False, generator=generator
            )[0]
            images, nsfw = self.run_safety_checker(images, device, pos.dtype)
            denorm = [True] * images.shape[0] if nsfw is None else [not n for n in nsfw]
            images = self.image_processor.postprocess(
                images, output_type=output_type, do_denormalize=denorm
            )
        self.maybe_free_model_hooks()
        if not return_dict:
            return images, nsfw
        return StableDiffusionPipelineOutput(images=images, nsfw_content_detected=nsfw)


def load_pipeline(
    path: str | Path,
    scheduler: str | None = None,
    torch_dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> StableDiffusionPerpNegPipeline:
    """Load a Stable Diffusion model from a local folder or the local Hugging Face cache.

    `path` is a diffusers model folder (one with `model_index.json`, e.g. made by
    `save_pretrained` or `huggingface-cli download CompVis/stable-diffusion-v1-4`) or a hub id
    that is already in the cache; nothing is downloaded. `scheduler` replaces the model's
    scheduler by name (one of `perpneg.sampling.SCHEDULERS`).
    """
    if scheduler is not None and scheduler not in SCHEDULERS:
        raise ValueError(
            f"unknown scheduler {scheduler!r}; choose one of {', '.join(sorted(SCHEDULERS))}"
        )
    local = Path(path)
    if local.exists() and not (local / "model_index.json").is_file():
        raise ValueError(
            f"{local} is not a diffusers model folder: it has no model_index.json. Give the folder "
            "written by `save_pretrained` or downloaded with `huggingface-cli download "
            "CompVis/stable-diffusion-v1-4 --local-dir <dir>`."
        )
    try:
        pipe = StableDiffusionPerpNegPipeline.from_pretrained(
            str(path), torch_dtype=torch_dtype, safety_checker=None, local_files_only=True
        )
    except (OSError, ValueError) as err:
        raise ValueError(
            f"could not load a Stable Diffusion model from {path!r} without downloading ({err}). "
            "Give a local diffusers folder or a model id already in the Hugging Face cache "
            "(download it first with `huggingface-cli download <id>`)."
        ) from err
    if scheduler is not None:
        pipe.scheduler = make_scheduler(scheduler, pipe.scheduler.config)
    return pipe.to(device)
