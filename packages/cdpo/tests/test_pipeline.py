"""End-to-end properties on the quick profile (spec 7.4), resuming, and refusing bad state."""

import json
import math
import shutil

import pytest

from cdpo.config import replace
from cdpo.pipeline import Pipeline
from cdpo.reproduce import reproduce
from reprozoo.checkpoint import CheckpointError


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, fabricate_samples):
    from cdpo.config import profile

    cfg = replace(
        profile("quick"), methods=("sft", "dpo", "tdpo", "cdpo_seq", "cdpo_code"), pretrain_steps=5
    )
    run = tmp_path_factory.mktemp("quick") / "run"
    pipe = Pipeline(cfg, run)
    fabricate_samples(pipe, cfg.n_samples)
    record = reproduce(cfg, run, run / "record.json", "cpu")
    return cfg, run, record


def test_quick_reproduction_invariants(quick_run):
    cfg, run, record = quick_run
    scores = json.loads((run / "scores.json").read_text())
    sel = json.loads((run / "selection.json").read_text())
    assert len(sel["pairs"]) >= len(sel["pos"]) // 10 > 0  # at least one pair per 10 questions
    for s_list, key in ((scores["s_rejected"], "rejected"), (scores["s_chosen"], "chosen")):
        for s, p in zip(s_list, sel["pairs"], strict=True):
            assert len(s) == len(p[key]) and all(0 < x < 1 for x in s)
    for method in cfg.methods:
        for seed in cfg.seeds:
            h = json.loads((run / "pref" / f"{method}-s{seed}.history.json").read_text())
            assert h["loss"] and all(math.isfinite(x) for x in h["loss"])
    ro = json.loads((run / "rollouts.json").read_text())
    for r in ro["rows"]:
        if r["critical"] is not None and r["counts"][r["critical"]] == 0:
            assert r["with"] == 0
    titles = [t["title"] for t in record["tables"]]
    assert titles[0].startswith("Accuracy") and record["seeds"] == list(cfg.seeds)
    acc = record["tables"][0]["rows"]
    assert {r["method"] for r in acc} >= {"Base model", "+ DPO"}
    assert all(len(r["greedy acc"]["values"]) == len(cfg.seeds) for r in acc[1:])


def test_interrupted_pipeline_resumes_to_the_same_result(quick_run):
    cfg, run, record = quick_run
    # Lose the last stages of one method as if the run had been killed, and rerun.
    before = json.loads((run / "eval" / "cdpo_seq-s1.json").read_text())
    shutil.rmtree(run / "pref" / "cdpo_seq-s1")
    (run / "eval" / "cdpo_seq-s1.json").unlink()
    results = Pipeline(cfg, run).run_methods()
    after = results["cdpo_seq"][cfg.seeds.index(1)]
    assert after["correct"] == before["correct"]


def test_different_config_in_the_same_folder_is_refused(quick_run):
    cfg, run, _ = quick_run
    with pytest.raises(CheckpointError, match="different config"):
        Pipeline(replace(cfg, beta=0.3), run)


def test_pretraining_resumes_bit_identically(tmp_path, quick_cfg):
    from cdpo.model import param_checksum, tiny_llama
    from cdpo.task import ArithTask
    from cdpo.train import pretrain

    cfg = replace(quick_cfg, pretrain_steps=6, pretrain_batch=4)
    task = ArithTask(cfg)

    def fresh():
        return tiny_llama(cfg, len(task.tok), task.pad_id, task.bos_id, task.eos_id)

    straight = pretrain(fresh(), task, cfg, tmp_path / "a", save_every=100)

    class Interrupted(ArithTask):
        calls = 0

        def corpus_batch(self, rng, n):
            Interrupted.calls += 1
            if Interrupted.calls == 5:
                raise KeyboardInterrupt
            return super().corpus_batch(rng, n)

    with pytest.raises(KeyboardInterrupt):
        pretrain(fresh(), Interrupted(cfg), cfg, tmp_path / "b", save_every=3)
    resumed = pretrain(fresh(), task, cfg, tmp_path / "b", save_every=3)
    assert param_checksum(resumed) == param_checksum(straight)


def test_corrupt_checkpoint_is_refused(tmp_path, quick_cfg):
    from cdpo.model import tiny_llama
    from cdpo.task import ArithTask
    from cdpo.train import pretrain

    cfg = replace(quick_cfg, pretrain_steps=2, pretrain_batch=2)
    task = ArithTask(cfg)
    model = tiny_llama(cfg, len(task.tok), task.pad_id, task.bos_id, task.eos_id)
    pretrain(model, task, cfg, tmp_path / "c", save_every=2)
    data = (tmp_path / "c" / "state.safetensors").read_bytes()
    (tmp_path / "c" / "state.safetensors").write_bytes(data[:-10] + b"0123456789")
    with pytest.raises(CheckpointError, match="checksum"):
        pretrain(model, task, cfg, tmp_path / "c")
