"""Model construction, LoRA wrapping and atomic save / load of transformers models."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM
from transformers.utils import logging as hf_logging

from reprozoo.checkpoint import CheckpointError, save_pretrained_atomic

# Model folders are loaded and saved dozens of times per run; their progress bars are noise.
hf_logging.disable_progress_bar()

POSNEG_TARGETS = ("gate_proj", "up_proj", "down_proj")  # spec 1.5: MLP only
PREF_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def tiny_llama(cfg, vocab_size: int, pad_id: int, bos_id: int, eos_id: int) -> LlamaForCausalLM:
    """The embedded base model (spec 6.2): a small Llama built from a config, random init."""
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=cfg.d_model,
        intermediate_size=cfg.d_ffn,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_heads,
        max_position_embeddings=160,
        tie_word_embeddings=True,
        pad_token_id=pad_id,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
    )
    torch.manual_seed(cfg.seed)
    return LlamaForCausalLM(config)


def add_lora(model, r: int, alpha: int, dropout: float, targets):
    """Wrap ``model`` in a peft LoRA adapter on ``targets``; only adapter weights train."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(targets),
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def merge_lora(model):
    """Fold a peft adapter into the base weights (spec 1.5: merged before use)."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model


def save_model(model, directory: str | os.PathLike) -> Path:
    """``save_pretrained`` (safetensors) into a temporary folder, then swap it in atomically."""
    return save_pretrained_atomic(model, directory, safe_serialization=True)


def load_model(directory: str | os.PathLike, dtype=torch.float32):
    """Load a saved model, refusing a missing or unreadable folder with a clear message."""
    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise CheckpointError(
            f"no model at {directory} (expected config.json and model.safetensors); "
            "rerun the stage that writes it, or delete the run folder to start fresh"
        )
    try:
        return AutoModelForCausalLM.from_pretrained(directory, dtype=dtype)
    except Exception as exc:  # transformers raises many types for a damaged folder
        raise CheckpointError(
            f"cannot load the model at {directory}: {exc}; delete it and rerun"
        ) from exc


def param_checksum(model) -> float:
    return float(sum(p.detach().double().sum() for p in model.parameters()))
