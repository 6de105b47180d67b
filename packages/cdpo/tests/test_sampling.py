"""The KV-cache sampler against full forward passes."""

import torch

from cdpo.config import profile
from cdpo.model import tiny_llama
from cdpo.sampling import filter_logits, sample


def model():
    torch.manual_seed(0)
    return tiny_llama(profile("quick"), 20, 0, 1, 2).eval()


@torch.no_grad()
def greedy_reference(m, prompt, n):
    ids = list(prompt)
    out = []
    for _ in range(n):
        nxt = int(m(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
        out.append(nxt)
        ids.append(nxt)
        if nxt == 2:
            break
    return out


def test_batched_cached_greedy_equals_uncached_one_by_one():
    m = model()
    prompts = [[1, 5, 6, 7, 8], [1, 9], [1, 3, 4, 10, 11, 12, 13]]
    got = sample(m, prompts, eos_id=2, pad_id=0, max_new_tokens=8, temperature=0)
    for p, g in zip(prompts, got, strict=True):
        assert g == greedy_reference(m, p, 8)


def test_sampling_is_reproducible_with_a_generator():
    m = model()
    prompts = [[1, 5, 6]] * 6
    kw = dict(eos_id=2, pad_id=0, max_new_tokens=6, temperature=1.0, top_p=0.9)
    a = sample(m, prompts, generator=torch.Generator().manual_seed(3), **kw)
    b = sample(m, prompts, generator=torch.Generator().manual_seed(3), **kw)
    assert a == b


def test_top_p_keeps_the_smallest_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = torch.isfinite(filter_logits(logits, 1.0, 0.75))
    assert kept.tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, 1.0, 1.0)).all()
