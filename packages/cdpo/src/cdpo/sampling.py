"""Batched autoregressive sampling with a KV cache (spec 1.2, 6.3).

The loop is written by hand rather than through ``generate`` so that it takes an explicit
``torch.Generator``, left-pads prompts of different lengths, and returns exactly the token ids
it drew (no detokenise / retokenise round trip between sampling and scoring).
"""

from __future__ import annotations

import inspect

import torch
from transformers import LlamaForCausalLM

# transformers renamed the cache argument of ``forward`` from ``past_key_values`` to ``cache``.
_FORWARD_ARGS = inspect.signature(LlamaForCausalLM.forward).parameters
CACHE_ARG = "cache" if "cache" in _FORWARD_ARGS else "past_key_values"


def left_pad(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack id lists to the right edge: ``(ids, attention_mask)``, both ``(B, L)``."""
    L = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), L), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), L), dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            ids[i, L - len(s) :] = torch.tensor(s, dtype=torch.long)
            mask[i, L - len(s) :] = 1
    return ids, mask


def filter_logits(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """Temperature scaling then nucleus (top-p) truncation; removed entries become -inf."""
    logits = logits / temperature
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        # Drop a token once the mass strictly before it already reaches top_p.
        drop = probs.cumsum(-1) - probs >= top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return logits


@torch.no_grad()
def sample(
    model,
    prompts: list[list[int]],
    *,
    eos_id: int,
    pad_id: int,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    batch_size: int = 512,
) -> list[list[int]]:
    """Continue every prompt; return the new ids of each, ending with EOS when one was drawn.

    ``temperature == 0`` is greedy decoding.
    """
    out: list[list[int]] = []
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        ids, mask = left_pad(chunk, pad_id)
        ids, mask = ids.to(device), mask.to(device)
        B = ids.shape[0]
        new = torch.full((B, max_new_tokens), pad_id, dtype=torch.long, device=device)
        done = torch.zeros(B, dtype=torch.bool, device=device)
        lengths = torch.zeros(B, dtype=torch.long, device=device)
        past, step_ids = None, ids
        for t in range(max_new_tokens):
            positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -step_ids.shape[1] :]
            res = model(
                input_ids=step_ids,
                attention_mask=mask,
                position_ids=positions,
                use_cache=True,
                **{CACHE_ARG: past},
            )
            past, logits = getattr(res, CACHE_ARG), res.logits[:, -1, :].float()
            if temperature == 0:
                nxt = logits.argmax(-1)
            else:
                probs = filter_logits(logits, temperature, top_p).softmax(-1)
                nxt = torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1)
                nxt = nxt.to(device)
            new[:, t] = nxt
            lengths += (~done).long()
            done |= nxt == eos_id
            if bool(done.all()):
                break
            step_ids = nxt[:, None]
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        out.extend(row[:n] for row, n in zip(new.tolist(), lengths.tolist(), strict=True))
    model.train(was_training)
    return out
