"""Gradients reach only the policy (spec 7.1.5), LoRA, and training under torchrun (gloo)."""

import copy
import json

import torch

from cdpo.config import profile, replace
from cdpo.model import PREF_TARGETS, add_lora, param_checksum, tiny_llama
from cdpo.preference import attach_reference, batch_loss, train_preference
from reprozoo.runtime import run_multiprocess, setup_distributed

CFG = replace(profile("quick"), pref_batch=4, pref_epochs=1)


def tiny():
    torch.manual_seed(0)
    return tiny_llama(CFG, 16, 0, 1, 2)


def pairs(n=8):
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(n):
        r = lambda k: torch.randint(3, 16, (k,), generator=g).tolist()  # noqa: E731
        c, rj = r(4) + [2], r(6) + [2]
        out.append(
            {
                "prompt": [1] + r(3),
                "chosen": c,
                "rejected": rj,
                "s_chosen": torch.rand(len(c), generator=g).tolist(),
                "s_rejected": torch.rand(len(rj), generator=g).tolist(),
                "oracle": [0.0] * (len(rj) - 1) + [1.0],
            }
        )
    return out


def test_gradients_reach_only_the_policy():
    base = tiny()
    ps = pairs()
    attach_reference(ps, base, 0)
    policy = copy.deepcopy(base).train()
    ref = copy.deepcopy(base).eval().requires_grad_(False)
    before = param_checksum(ref)
    for method in ("dpo", "cdpo_seq", "cdpo_code", "tdpo", "rpo"):
        policy.zero_grad(set_to_none=True)
        loss, _ = batch_loss(method, CFG, policy, ps[:4], 0, ref)
        loss.backward()
        assert all(p.grad is not None for p in policy.parameters()), method
        assert all(p.grad is None for p in ref.parameters()), method
    assert param_checksum(ref) == before
    trained, _ = train_preference(base, ps, "cdpo_seq", CFG, 0, 0)
    assert param_checksum(base) == param_checksum(ref)  # the base model is left untouched
    assert param_checksum(trained) != param_checksum(base)


def test_lora_trains_only_adapters_and_adapter_off_is_the_base():
    base = tiny()
    ids = torch.tensor([[1, 5, 6, 7, 8]])
    with torch.no_grad():
        base_out = base(input_ids=ids).logits
    model = add_lora(copy.deepcopy(base), 4, 8, 0.0, PREF_TARGETS)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad()
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)
    with torch.no_grad(), model.disable_adapter():
        assert torch.equal(model(input_ids=ids).logits, base_out)
    with torch.no_grad():
        assert not torch.equal(model(input_ids=ids).logits, base_out)


def test_lora_preference_stage_uses_the_adapter_off_reference():
    base = tiny()
    ps = pairs(4)
    attach_reference(ps, base, 0)
    policy, hist = train_preference(base, ps, "tdpo", CFG, 0, 0, use_lora=True)
    assert not hasattr(policy, "disable_adapter")  # merged back into a plain model
    assert len(hist["loss"]) == 1


def _ddp_worker(rank, world_size, out):
    dist = setup_distributed("cpu")
    base = tiny()
    ps = pairs(8)
    attach_reference(ps, base, 0)
    policy, _ = train_preference(base, ps, "cdpo_code", CFG, 0, 0, dist=dist)
    with open(f"{out}/rank{rank}.json", "w") as fh:
        json.dump({"checksum": param_checksum(policy)}, fh)


def test_training_runs_under_two_gloo_processes(tmp_path):
    run_multiprocess(_ddp_worker, world_size=2, args=(str(tmp_path),))
    sums = [json.loads((tmp_path / f"rank{r}.json").read_text())["checksum"] for r in (0, 1)]
    assert sums[0] == sums[1]
    assert sums[0] != param_checksum(tiny())


def test_weight_tables_of_the_methods():
    from cdpo.preference import pair_weights

    p = pairs(1)[0]
    n_w, n_l = len(p["chosen"]), len(p["rejected"])
    w_w, w_l = pair_weights(p, "cdpo_seq", only_neg=True)
    assert w_w == [1.0] * n_w and w_l[-1] == 1.0  # EOS keeps weight 1
    assert w_l[:-1] == [1 - s for s in p["s_rejected"][:-1]]
    w_w, _ = pair_weights(p, "cdpo_code", only_neg=False)
    assert w_w[:-1] == p["s_chosen"][:-1] and w_w[-1] == 1.0
    _, shuffled = pair_weights(p, "cdpo_shuffled", only_neg=True)
    assert sorted(shuffled[:-1]) == sorted(w_l[:-1]) and shuffled[-1] == 1.0
    assert pair_weights(p, "dpo", only_neg=True) == ([1.0] * n_w, [1.0] * n_l)
