"""The paper's pipeline as resumable stages (spec 1.2-1.8, 6.3).

Every stage writes its artefact atomically into the run folder (a model folder or a JSON
file); a rerun loads finished stages and continues from the first missing one. Under
``torchrun`` the training stages run on every process (DDP) and the sampling, scoring and
evaluation stages run on rank 0 while the others wait and then read the artefact.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import numpy as np
import torch

from reprozoo.checkpoint import CheckpointError
from reprozoo.config import config_to_dict
from reprozoo.results import atomic_write_json
from reprozoo.runtime import barrier, get_logger, progress

from . import model as M
from .ce import score_sequences
from .preference import attach_reference, train_preference
from .sampling import sample
from .select import select_pair, select_sft_neg, select_sft_pos
from .train import pretrain, sft

log = get_logger("cdpo")


def make_task(cfg, data_root=None):
    if cfg.task == "arith":
        from .task import ArithTask

        return ArithTask(cfg)
    from .paper import PaperTask

    return PaperTask(cfg, data_root)


class Pipeline:
    """Runs and caches each stage of one configuration in ``run_dir``."""

    def __init__(self, cfg, run_dir, dist=None, data_root=None):
        self.cfg, self.dir, self.dist = cfg, Path(run_dir), dist
        self.dir.mkdir(parents=True, exist_ok=True)
        self._check_config()
        self.task = make_task(cfg, data_root)
        self.gen = torch.Generator().manual_seed(cfg.seed)

    @property
    def is_main(self) -> bool:
        return self.dist is None or self.dist.is_main

    def _check_config(self) -> None:
        path = self.dir / "config.json"
        now = json.loads(json.dumps(config_to_dict(self.cfg)))
        if path.exists():
            saved = json.loads(path.read_text())
            shared = ("methods", "seeds", "n_rollout", "n_with", "n_without", "eval_samples")
            diff = [k for k in now if k not in shared and saved.get(k) != now[k]]
            if diff:
                raise CheckpointError(
                    f"{self.dir} holds a run with a different config ({', '.join(diff)}); "
                    "use another --out folder or delete this one"
                )
        if self.dist is None or self.dist.is_main:
            atomic_write_json(path, now)

    def _json_stage(self, name: str, compute):
        path = self.dir / f"{name}.json"
        if not path.exists():
            if self.is_main:
                atomic_write_json(path, compute())
            barrier()
        return json.loads(path.read_text())

    def _model_stage(self, name: str, compute, everywhere: bool = False):
        path = self.dir / name
        if not (path / "config.json").exists():
            if everywhere or self.is_main:
                model = compute()
                if self.is_main:
                    M.save_model(model, path)
            barrier()
        return M.load_model(path).eval()

    # Stage 0: the base model (pretrained from scratch here, loaded at paper scale).
    def base(self):
        if self.cfg.task != "arith":
            return self.task.base_model()

        def compute():
            t = self.task
            model = M.tiny_llama(self.cfg, len(t.tok), t.pad_id, t.bos_id, t.eos_id)
            return pretrain(model, t, self.cfg, self.dir / "base_ckpt", self.dist)

        return self._model_stage("base", compute, everywhere=True)

    # Stages 1-2: sample trajectories and label them by answer checking (spec 1.2-1.3).
    def samples(self):
        def compute():
            cfg, t = self.cfg, self.task
            base = self.base()
            prompts = [t.prompt(q, fewshot=True) for q in t.train for _ in range(cfg.n_samples)]
            torch.manual_seed(cfg.seed)
            outs = sample(
                base,
                prompts,
                eos_id=t.eos_id,
                pad_id=t.pad_id,
                max_new_tokens=cfg.max_new_tokens,
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                generator=self.gen,
            )
            rows, malformed = [], 0
            for i, q in enumerate(t.train):
                resp = outs[i * cfg.n_samples : (i + 1) * cfg.n_samples]
                graded = [t.grade(q, r) for r in resp]
                malformed += sum(a is None for a, _ in graded)
                rows.append(
                    {
                        "responses": resp,
                        "answers": [a for a, _ in graded],
                        "correct": [c for _, c in graded],
                    }
                )
            n = len(outs)
            wrong = sum(not c for r in rows for c in r["correct"])
            log.info(
                "sampled %d trajectories: %.1f%% wrong, %d with no extractable answer",
                n,
                100 * wrong / n,
                malformed,
            )
            return {"rows": rows, "wrong_share": wrong / n, "malformed": malformed}

        return self._json_stage("samples", compute)

    # Stage 3: the released selection rules (spec 1.4).
    def selection(self):
        def compute():
            cfg, t = self.cfg, self.task
            rng = random.Random(cfg.seed)
            pos, neg, pairs, dropped = [], [], [], 0
            for qi, row in enumerate(self.samples()["rows"]):
                items = list(zip(row["responses"], row["answers"], row["correct"], strict=True))
                items = [(tuple(r), a, c) for r, a, c in items]
                prompt = t.prompt(t.train[qi])
                pos += [[qi, list(s[0])] for s in select_sft_pos(items, rng)]
                neg += [[qi, list(s[0])] for s in select_sft_neg(items, rng, cfg.neg_top_p)]
                pair = select_pair(items, rng)
                if pair is None:
                    continue
                chosen, rejected = (self._with_eos(list(s[0])) for s in pair)
                total = len(prompt) + max(len(chosen), len(rejected))
                if len(prompt) >= cfg.max_prompt_tokens or total >= cfg.max_total_tokens:
                    dropped += 1
                    continue
                pairs.append({"q": qi, "chosen": chosen, "rejected": rejected})
            log.info(
                "selected %d positive, %d negative examples and %d pairs (%d too long)",
                len(pos),
                len(neg),
                len(pairs),
                dropped,
            )
            return {"pos": pos, "neg": neg, "pairs": pairs, "dropped_long": dropped}

        return self._json_stage("selection", compute)

    def _with_eos(self, ids: list[int]) -> list[int]:
        return ids if ids and ids[-1] == self.task.eos_id else ids + [self.task.eos_id]

    # Stage 4: positive and negative models (spec 1.5).
    def posneg(self, which: str):
        def compute():
            cfg, t = self.cfg, self.task
            key = "pos" if which == "pos" else "neg"
            data = [(t.prompt(t.train[q]), self._with_eos(r)) for q, r in self.selection()[key]]
            model = copy.deepcopy(self.base()).train()
            if not data:
                log.warning(
                    "no %s examples were selected: the %s model stays the base model "
                    "(the base never answered right / wrong; train it longer)",
                    which,
                    which,
                )
                return model
            if cfg.posneg_adapter == "lora":
                model = M.add_lora(
                    model,
                    cfg.posneg_lora_r,
                    cfg.posneg_lora_alpha,
                    cfg.posneg_lora_dropout,
                    M.POSNEG_TARGETS,
                )
            model = sft(model, data, cfg, t.pad_id, cfg.seed, f"{which} model", self.dist)
            return M.merge_lora(model)

        return self._model_stage(which, compute, everywhere=True)

    # Stage 5: contrastive estimation on the exact ids the preference stage trains on (1.6).
    def scores(self):
        def compute():
            cfg, t = self.cfg, self.task
            pairs = self.selection()["pairs"]
            pos, neg = self.posneg("pos"), self.posneg("neg")
            prompts = [t.prompt(t.train[p["q"]]) for p in pairs]
            out = {}
            for key in ("chosen", "rejected"):
                seqs = [pr + p[key] for pr, p in zip(prompts, pairs, strict=True)]
                starts = [len(pr) for pr in prompts]
                out[key] = score_sequences(pos, neg, seqs, starts, cfg.gamma, t.pad_id)
            truth = [t.truth(t.train[p["q"]], p["rejected"]) for p in pairs]
            return {
                "s_chosen": out["chosen"],
                "s_rejected": out["rejected"],
                "truth": [list(x) for x in truth],
            }

        return self._json_stage("scores", compute)

    def pairs(self) -> list[dict]:
        """The DPO pairs with prompts, contrastive scores, oracle weights and reference logps."""
        t, sel, sc = self.task, self.selection(), self.scores()
        pairs = []
        for i, p in enumerate(sel["pairs"]):
            k, _ = sc["truth"][i]
            n = len(p["rejected"])
            oracle = [0.0] * n
            oracle[min(k, n - 1) if k is not None else n - 1] = 1.0
            pairs.append(
                {
                    "prompt": t.prompt(t.train[p["q"]]),
                    "chosen": p["chosen"],
                    "rejected": p["rejected"],
                    "s_chosen": sc["s_chosen"][i],
                    "s_rejected": sc["s_rejected"][i],
                    "oracle": oracle,
                }
            )
        attach_reference(pairs, self.base(), t.pad_id)
        return pairs

    # Stage 6: the preference methods, one model per (method, seed) (spec 1.7, 2).
    def policy(self, method: str, seed: int, pairs=None):
        hist_path = self.dir / "pref" / f"{method}-s{seed}.history.json"

        def compute():
            model, history = train_preference(
                self.base(),
                pairs if pairs is not None else self.pairs(),
                method,
                self.cfg,
                seed,
                self.task.pad_id,
                self.dist,
                use_lora=self.cfg.pref_adapter == "lora",
            )
            if self.is_main:
                atomic_write_json(hist_path, history)
            return model

        (self.dir / "pref").mkdir(exist_ok=True)
        return self._model_stage(f"pref/{method}-s{seed}", compute, everywhere=True)

    # Stage 7: evaluation (spec 1.8): greedy accuracy, by problem kind, equation accuracy.
    def evaluate(self, name: str, model_fn):
        def compute():
            cfg, t = self.cfg, self.task
            model = model_fn()
            prompts = [t.prompt(q, fewshot=True) for q in t.test]
            outs = sample(
                model,
                prompts,
                eos_id=t.eos_id,
                pad_id=t.pad_id,
                max_new_tokens=cfg.max_new_tokens,
                temperature=0,
            )
            correct = [t.grade(q, r)[1] for q, r in zip(t.test, outs, strict=True)]
            res = {"accuracy": float(np.mean(correct)), "correct": [int(c) for c in correct]}
            if hasattr(t, "equation_accuracy"):
                res["equation_accuracy"] = t.equation_accuracy(outs)
                for kind in ("trap_a", "trap_b", "plain"):
                    sel = [c for q, c in zip(t.test, correct, strict=True) if q.kind == kind]
                    res[f"accuracy_{kind}"] = float(np.mean(sel)) if sel else float("nan")
            if cfg.eval_samples:
                reps = [p for p in prompts for _ in range(cfg.eval_samples)]
                outs = sample(
                    model,
                    reps,
                    eos_id=t.eos_id,
                    pad_id=t.pad_id,
                    temperature=1.0,
                    max_new_tokens=cfg.max_new_tokens,
                    generator=self.gen,
                )
                qs = [q for q in t.test for _ in range(cfg.eval_samples)]
                ok = [t.grade(q, r)[1] for q, r in zip(qs, outs, strict=True)]
                res["sampled_accuracy"] = float(np.mean(ok))
            return res

        (self.dir / "eval").mkdir(exist_ok=True)
        return self._json_stage(f"eval/{name}", compute)

    def run_methods(self):
        """Train and evaluate every (method, seed); the base model is evaluated once."""
        cfg = self.cfg
        results = {"base": [self.evaluate("base", self.base)]}
        pairs = None
        jobs = [(m, s) for s in cfg.seeds for m in cfg.methods]
        for method, seed in progress(jobs, desc="methods"):
            name = f"{method}-s{seed}"
            if not (self.dir / "eval" / f"{name}.json").exists() and pairs is None:
                pairs = self.pairs()
            res = self.evaluate(name, lambda m=method, s=seed, p=pairs: self.policy(m, s, p))
            results.setdefault(method, []).append(res)
        return results
