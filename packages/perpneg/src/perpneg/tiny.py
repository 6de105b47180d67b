"""A tiny randomly initialised Stable Diffusion built from configs, for tests and `bench`.

Nothing is downloaded: the UNet, VAE and CLIP text encoder come from small configs, and a
byte-level CLIP tokenizer (single-character BPE vocabulary, a few merges) is written to disk.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from perpneg.pipeline import StableDiffusionPerpNegPipeline


def _bytes_to_unicode() -> dict[int, str]:
    """The reversible byte → printable character map of GPT-2/CLIP byte-level BPE."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1))
    keep += list(range(0xAE, 0xFF + 1))
    chars, n = keep[:], 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(keep, map(chr, chars), strict=True))


def write_tiny_tokenizer(directory: str | Path, max_length: int = 77) -> CLIPTokenizer:
    """Write vocab.json/merges.txt of a character-level CLIP BPE and load it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    symbols = list(_bytes_to_unicode().values())
    vocab_list = symbols + [c + "</w>" for c in symbols]
    merges = ["t h", "th e</w>", "v i", "vi e", "vie w</w>"]
    vocab_list += ["th", "the</w>", "vi", "vie", "view</w>", "<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(vocab_list)}
    (directory / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return CLIPTokenizer.from_pretrained(str(directory), model_max_length=max_length)


def tiny_components(tokenizer_dir: str | Path, seed: int = 0, v_prediction: bool = False) -> dict:
    """UNet, VAE, text encoder, tokenizer and DDIM scheduler of a tiny Stable Diffusion."""
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        block_out_channels=(16, 32),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=8,
        sample_size=16,
    )
    tokenizer = write_tiny_tokenizer(tokenizer_dir)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            vocab_size=len(tokenizer),
            max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type="v_prediction" if v_prediction else "epsilon",
    )
    return {
        "unet": unet.eval(),
        "vae": vae.eval(),
        "text_encoder": text_encoder.eval(),
        "tokenizer": tokenizer,
        "scheduler": scheduler,
        "safety_checker": None,
        "feature_extractor": None,
        "requires_safety_checker": False,
    }


def tiny_pipeline(
    tokenizer_dir: str | Path, seed: int = 0, **kwargs
) -> StableDiffusionPerpNegPipeline:
    """A ready-to-call tiny Perp-Neg pipeline (images of 16×16 pixels, latents 8×8)."""
    pipe = StableDiffusionPerpNegPipeline(**tiny_components(tokenizer_dir, seed, **kwargs))
    pipe.set_progress_bar_config(disable=True)
    return pipe
