"""`perpneg bench`: seconds per denoising step against diffusers' own pipeline, same run.

All pipelines share one tiny randomly initialised Stable Diffusion (no download). The
baseline is `StableDiffusionPipeline` with a negative prompt (2 UNet branches per step);
Perp-Neg with K negatives needs 2 + K branches, evaluated in one batched UNet call.
"""

from __future__ import annotations

import tempfile

import torch
from diffusers import StableDiffusionPipeline

from perpneg.guidance import perpneg
from perpneg.tiny import tiny_components
from reprozoo.bench import ratio_table, time_call


def run_bench(
    latent_size: int = 16, batch: int = 2, repeats: int = 5, steps: int = 10
) -> tuple[str, dict]:
    """A ratio table of s/step, and the figures: per-step seconds and the guidance share."""
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tok:
        from perpneg.pipeline import StableDiffusionPerpNegPipeline

        comps = tiny_components(tok)
        ours = StableDiffusionPerpNegPipeline(**comps)
        ref = StableDiffusionPipeline(**comps)
        for p in (ours, ref):
            p.set_progress_bar_config(disable=True)
        size = latent_size * ours.vae_scale_factor
        common = dict(
            num_inference_steps=steps,
            height=size,
            width=size,
            output_type="latent",
            num_images_per_prompt=batch,
        )

        def seed():
            return torch.Generator().manual_seed(0)

        runs = {
            "diffusers SD, negative prompt": lambda: ref(
                "a lion", negative_prompt="a cat", generator=seed(), **common
            ),
            "perpneg pipeline, sd_negative": lambda: ours(
                "a lion",
                negative_prompts=["a cat"],
                negative_weights=[1.0],
                method="sd_negative",
                generator=seed(),
                **common,
            ),
            "perpneg pipeline, Perp-Neg K=1": lambda: ours(
                "a lion",
                negative_prompts=["a cat"],
                negative_weights=[1.5],
                generator=seed(),
                **common,
            ),
            "perpneg pipeline, Perp-Neg K=2": lambda: ours(
                "a lion",
                negative_prompts=["a cat", "a car"],
                negative_weights=[1.5, 1.0],
                generator=seed(),
                **common,
            ),
            "perpneg pipeline, K=2, one call per branch": lambda: ours(
                "a lion",
                negative_prompts=["a cat", "a car"],
                negative_weights=[1.5, 1.0],
                batch_branches=False,
                generator=seed(),
                **common,
            ),
        }
        per_step = {name: time_call(fn, repeats=repeats) / steps for name, fn in runs.items()}

        # The guidance arithmetic alone, on tensors of the latent shape, K = 2.
        shape = (batch, 4, latent_size, latent_size)
        e_u, e_p, n1, n2 = (torch.randn(shape) for _ in range(4))
        arith = time_call(
            lambda: perpneg(e_u, e_p, [n1, n2], [1.5, 1.0], 7.5), warmup=3, repeats=50
        )
    table = ratio_table(per_step, "diffusers SD, negative prompt", "s/step", higher_is_better=False)
    share = arith / per_step["perpneg pipeline, Perp-Neg K=2"]
    text = (
        f"{table}\n\nguidance arithmetic (Perp-Neg, K=2): {arith * 1e6:.1f} µs per step = "
        f"{100 * share:.2f}% of the Perp-Neg K=2 step time (latents {shape})"
    )
    return text, {"per_step": per_step, "arith_s": arith, "arith_share": share}
