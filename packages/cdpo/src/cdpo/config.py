"""One frozen config for the whole pipeline, with the `quick`, `default` and `paper` profiles.

The `paper` profile holds the released code's values (spec Appendix A); `default` is the
embedded CPU reproduction of spec 6.2-6.5; `quick` is a seconds-long smoke run for the tests.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from reprozoo.config import ConfigError

from .losses import METHODS


def _h(text: str, **kw):
    return field(metadata={"help": text}, **kw)


@dataclass(frozen=True)
class CdpoConfig:
    """Every setting of the pipeline; the field help texts are the reference."""

    task: Literal["arith", "gsm8k", "math500"] = _h(
        "arith = the embedded procedural problems; gsm8k / math500 = paper scale", default="arith"
    )
    model: str = _h(
        "'tiny-llama' (built from a config) or a local HF model folder", default="tiny-llama"
    )
    # Embedded base model and its pretraining (spec 6.2).
    d_model: int = _h("hidden size of the tiny Llama", default=96)
    n_layers: int = _h("decoder layers of the tiny Llama", default=3)
    n_heads: int = _h("attention heads of the tiny Llama", default=4)
    d_ffn: int = _h("MLP width of the tiny Llama", default=256)
    pretrain_steps: int = _h("base-model pretraining steps on the noisy corpus", default=600)
    pretrain_batch: int = _h("pretraining batch size", default=64)
    pretrain_lr: float = _h("pretraining peak learning rate (AdamW, cosine)", default=2e-3)
    pretrain_warmup: int = _h("pretraining warm-up steps", default=100)
    flip_a: float = _h("corpus probability of writing '+' for the trap verb 'lends'", default=0.65)
    flip_b: float = _h("corpus probability of writing '-' for 'receives'", default=0.35)
    n_train: int = _h("training questions to sample trajectories for", default=800)
    n_test: int = _h("test questions", default=1000)
    # Sampling and labelling (spec 1.2-1.4).
    n_samples: int = _h("trajectories sampled per training question (paper: 64)", default=16)
    temperature: float = _h("sampling temperature of the training trajectories", default=1.0)
    top_p: float = _h("nucleus sampling mass", default=0.95)
    max_new_tokens: int = _h("longest generated response in tokens", default=40)
    neg_top_p: float = _h("share of wrong samples the negative SFT set covers", default=0.5)
    # Positive and negative models (spec 1.5).
    posneg_adapter: Literal["full", "lora"] = _h(
        "full fine-tuning or LoRA for the positive / negative models", default="full"
    )
    posneg_lr: float = _h("learning rate of the positive / negative models", default=5e-4)
    posneg_epochs: int = _h("epochs of the positive / negative models", default=3)
    posneg_batch: int = _h("batch size of the positive / negative models", default=32)
    posneg_lora_r: int = _h("LoRA rank of the positive / negative models", default=8)
    posneg_lora_alpha: int = _h("LoRA alpha of the positive / negative models", default=16)
    posneg_lora_dropout: float = _h("LoRA dropout of the positive / negative models", default=0.1)
    holdout: float = _h("share of SFT examples held out to pick the best epoch", default=0.1)
    # Contrastive estimation and preference training (spec 1.6-1.7, 2).
    gamma: float = _h("contrast strength: softmax((1+gamma) z_pos - gamma z_neg)", default=1.0)
    only_neg: bool = _h("weight only rejected tokens (chosen weights 1), as released", default=True)
    methods: tuple[str, ...] = _h(
        f"preference methods to train, from {', '.join(METHODS)}",
        default=("sft", "dpo", "rpo", "tdpo", "cdpo_seq", "cdpo_code", "oracle"),
    )
    pref_adapter: Literal["full", "lora"] = _h(
        "full fine-tuning or LoRA for the preference stage", default="full"
    )
    pref_lr: float = _h("preference-stage learning rate", default=1e-4)
    pref_epochs: int = _h("preference-stage epochs", default=3)
    pref_batch: int = _h("pairs per preference step (split across torchrun processes)", default=16)
    pref_lora_r: int = _h("LoRA rank of the preference stage", default=16)
    pref_lora_alpha: int = _h("LoRA alpha of the preference stage", default=32)
    warmup_ratio: float = _h("share of preference steps spent warming up", default=0.1)
    weight_decay: float = _h("AdamW weight decay of the preference stage", default=0.01)
    beta: float = _h("DPO beta", default=0.1)
    rpo_alpha: float = _h("weight of RPO's length-normalised NLL", default=1.0)
    tdpo_alpha: float = _h("TDPO2 alpha", default=0.5)
    seeds: tuple[int, ...] = _h("preference-stage seeds", default=(0, 1, 2))
    shuffle_seed: int = _h("seed of the pair order (33 in the released code)", default=33)
    # Evaluation and rollouts (spec 1.8-1.9, 6.5).
    eval_samples: int = _h("sampled (T=1) answers per test question besides greedy", default=0)
    n_rollout: int = _h("wrong trajectories used in the rollout experiment", default=40)
    n_with: int = _h("continuations per prefix (paper: 64)", default=16)
    n_without: int = _h("alternative tokens at the critical position (paper: 64)", default=16)
    reset_above: int = _h("a later prefix with more correct continuations resets", default=1)
    # Paper-scale limits (spec 1.4, 1.7).
    max_prompt_tokens: int = _h("drop pairs whose prompt is this long or longer", default=512)
    max_total_tokens: int = _h(
        "drop pairs whose prompt+response is this long or longer", default=1024
    )
    seed: int = field(
        default=0,
        metadata={"help": "seed of data, pretraining and sampling (set by --seed)", "cli": False},
    )

    def __post_init__(self) -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise ConfigError(f"invalid cdpo config: {what}")

        for name in (
            "pretrain_steps",
            "pretrain_batch",
            "n_train",
            "n_test",
            "n_samples",
            "max_new_tokens",
            "posneg_epochs",
            "posneg_batch",
            "pref_epochs",
            "pref_batch",
            "d_model",
            "n_layers",
            "n_heads",
            "d_ffn",
        ):
            need(getattr(self, name) > 0, f"{name} must be positive, got {getattr(self, name)}")
        need(self.d_model % self.n_heads == 0, "d_model must be a multiple of n_heads")
        for name in ("flip_a", "flip_b", "holdout", "warmup_ratio"):
            need(0 <= getattr(self, name) < 1, f"{name} must lie in [0, 1)")
        need(0 < self.top_p <= 1, f"top_p must lie in (0, 1], got {self.top_p}")
        need(0 < self.neg_top_p <= 1, f"neg_top_p must lie in (0, 1], got {self.neg_top_p}")
        need(self.temperature > 0, "temperature must be > 0 for trajectory sampling")
        need(self.gamma >= 0, f"gamma must be >= 0, got {self.gamma}")
        need(self.beta > 0, f"beta must be > 0, got {self.beta}")
        for name in ("pretrain_lr", "posneg_lr", "pref_lr"):
            need(getattr(self, name) > 0, f"{name} must be > 0")
        bad = [m for m in self.methods if m not in METHODS]
        need(not bad, f"unknown methods {bad}; choose from {list(METHODS)}")
        need(len(self.methods) > 0, "give at least one method")
        need(len(self.seeds) > 0, "give at least one seed")
        need(self.n_with >= 1 and self.n_without >= 1, "n_with and n_without must be >= 1")
        need(self.n_rollout >= 0 and self.eval_samples >= 0, "counts must be >= 0")
        if self.task != "arith":
            need(self.model != "tiny-llama", "paper-scale tasks need --model (a local HF folder)")


PROFILES: dict[str, CdpoConfig] = {
    "default": CdpoConfig(),
    "quick": CdpoConfig(
        d_model=32,
        n_layers=1,
        n_heads=2,
        d_ffn=64,
        pretrain_steps=30,
        pretrain_batch=16,
        n_train=24,
        n_test=40,
        n_samples=6,
        posneg_epochs=1,
        pref_epochs=1,
        pref_batch=8,
        methods=("sft", "dpo", "cdpo_seq", "cdpo_code"),
        seeds=(0, 1),
        n_rollout=2,
        n_with=4,
        n_without=4,
        pretrain_warmup=5,
    ),
    # The released code's settings (spec Appendix A); the model and task come from the user.
    "paper": CdpoConfig(
        task="gsm8k",
        model="meta-llama/Meta-Llama-3-8B",
        n_samples=64,
        temperature=0.5,
        top_p=0.95,
        max_new_tokens=1024,
        posneg_adapter="lora",
        posneg_lr=3e-4,
        posneg_epochs=1,
        posneg_batch=6,
        pref_adapter="lora",
        pref_lr=4e-5,
        pref_epochs=3,
        pref_batch=8,
        n_train=7473,
        n_test=1319,
        n_rollout=100,
        n_with=64,
        n_without=64,
        reset_above=3,
        seeds=(0, 1, 2),
        methods=("sft", "dpo", "rpo", "tdpo", "cdpo_seq", "cdpo_code"),
    ),
}

PAPER_TEMPERATURE = {  # spec 1.2: tuned so that each question gets about 10 wrong samples
    ("gsm8k", "Meta-Llama-3-8B"): 0.5,
    ("gsm8k", "Meta-Llama-3-70B"): 0.85,
    ("gsm8k", "deepseek-math-7b-base"): 1.0,
    ("math500", "Meta-Llama-3-8B"): 0.1,
    ("math500", "Meta-Llama-3-70B"): 0.15,
    ("math500", "deepseek-math-7b-base"): 0.3,
}


def profile(name: str) -> CdpoConfig:
    if name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}; choose from {sorted(PROFILES)}")
    return PROFILES[name]


def replace(cfg: CdpoConfig, **kw) -> CdpoConfig:
    return dataclasses.replace(cfg, **kw)
