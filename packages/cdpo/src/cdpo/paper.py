"""Paper scale: GSM8K / MATH500 from local copies and a Hugging Face causal LM (spec 6.8).

Expected layout under the data root (``--data-root`` or ``$REPROZOO_DATA``)::

    gsm8k/train.jsonl, gsm8k/test.jsonl     rows {"question", "answer": "... #### 42"}
    math/train.jsonl                        rows {"problem", "solution": "... \\boxed{..}"}
    math500/test.jsonl                      rows {"problem", "solution", "answer"}
    models/<name>/                          a save_pretrained folder (config, weights, tokenizer)

Export them once with ``datasets`` on a machine with network access, for example
``load_dataset("openai/gsm8k", "main")["train"].to_json("gsm8k/train.jsonl")``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from reprozoo.data import DataNotFoundError, require_layout, resolve_data_root
from reprozoo.runtime import get_logger

from . import checkers

log = get_logger("cdpo")

LAYOUT = {
    "gsm8k": (
        ("gsm8k/train.jsonl", "gsm8k/test.jsonl"),
        "openai/gsm8k (config 'main') from the Hugging Face Hub, exported to jsonl",
    ),
    "math500": (
        ("math/train.jsonl", "math500/test.jsonl"),
        "MATH train (e.g. EleutherAI/hendrycks_math, 7 subjects) and "
        "HuggingFaceH4/MATH-500, exported to jsonl",
    ),
}

# Few-shot exemplars written for this package in the released prompt format (spec 1.1).
GSM8K_SHOTS = [
    (
        "A baker made 24 rolls and sold 9 of them. How many rolls are left?",
        "The baker started with 24 rolls. After selling 9, 24 - 9 = 15 remain. The answer is 15.",
    ),
    (
        "Each box holds 6 pencils. How many pencils are in 7 boxes?",
        "Seven boxes of 6 pencils hold 7 * 6 = 42 pencils. The answer is 42.",
    ),
    (
        "Mia had $30. She bought a book for $12 and a pen for $3. How much money is left?",
        "She spent 12 + 3 = 15 dollars, so 30 - 15 = 15 dollars are left. The answer is 15.",
    ),
    (
        "A train travels 60 miles per hour for 3 hours. How far does it go?",
        "In 3 hours at 60 miles per hour it covers 3 * 60 = 180 miles. The answer is 180.",
    ),
]
MATH_SHOTS = [
    (
        "What is $\\frac{3}{4} + \\frac{1}{8}$?",
        "Write both over 8: $\\frac{6}{8} + \\frac{1}{8} = \\frac{7}{8}$. So the sum is "
        "$\\boxed{\\frac{7}{8}}$.\nFinal Answer: The final answer is $\\frac{7}{8}$. "
        "I hope it is correct.",
    ),
    (
        "Solve $2x + 5 = 17$ for $x$.",
        "Subtract 5 to get $2x = 12$, then divide by 2: $x = \\boxed{6}$.\nFinal Answer: The "
        "final answer is $6$. I hope it is correct.",
    ),
]


def _read_jsonl(path: Path) -> list[dict]:
    from datasets import load_dataset

    return list(load_dataset("json", data_files=str(path), split="train"))


class PaperTask:
    """Prompts, grading and data of GSM8K or MATH500 with a tokenizer from the model folder."""

    def __init__(self, cfg, data_root=None) -> None:
        from transformers import AutoTokenizer

        self.cfg, self.name = cfg, cfg.task
        root = resolve_data_root(data_root)
        files, source = LAYOUT[cfg.task]
        require_layout(root, cfg.task, files, source)
        self.model_dir = self._model_dir(cfg.model, root)
        self.tok = AutoTokenizer.from_pretrained(self.model_dir)
        self.eos_id = self.tok.eos_token_id
        self.pad_id = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.eos_id
        self.malformed: list[str] = []
        self.train = self._problems(root / files[0], "train")[: cfg.n_train]
        self.test = self._problems(root / files[1], "test")[: cfg.n_test]
        if self.malformed:
            log.warning(
                "%d malformed rows left out: %s",
                len(self.malformed),
                "; ".join(self.malformed[:10]),
            )
        self._base = None

    @staticmethod
    def _model_dir(model: str, root: Path) -> Path:
        for path in (Path(model), root / "models" / Path(model).name):
            if (path / "config.json").is_file():
                return path
        raise DataNotFoundError(
            f"no model folder found for {model!r}: looked at {Path(model)} and "
            f"{root / 'models' / Path(model).name} (expected config.json, weights and tokenizer "
            "files); download it once with huggingface_hub.snapshot_download into one of them"
        )

    def _problems(self, path: Path, split: str) -> list[dict]:
        out = []
        for i, row in enumerate(_read_jsonl(path)):
            q = row.get("question") or row.get("problem")
            if self.name == "gsm8k":
                gold = checkers.gsm8k_gold(row.get("answer") or "")
            else:
                gold = row.get("answer") or checkers.last_boxed(row.get("solution") or "")
                gold = checkers.normalize_math(gold) if gold else None
            if not q or gold is None:
                self.malformed.append(f"{path.name}:{i + 1} (no question or no gold answer)")
                continue
            out.append({"question": q, "gold": gold, "row": i, "split": split})
        return out

    def base_model(self):
        from transformers import AutoModelForCausalLM

        if self._base is None:
            dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
            self._base = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=dtype).eval()
        return self._base

    def _text(self, problem: dict, fewshot: bool) -> str:
        if self.name == "gsm8k":
            shots = "".join(f"Question: {q}\nAnswer: {a}\n\n" for q, a in GSM8K_SHOTS)
            return (shots if fewshot else "") + f"Question: {problem['question']}\nAnswer: "
        shots = "".join(f"Problem: {q}\nSolution: {a}\n\n" for q, a in MATH_SHOTS)
        return (shots if fewshot else "") + f"Problem: {problem['question']}\nSolution: "

    def prompt(self, problem: dict, fewshot: bool = False) -> list[int]:
        """Few-shot for sampling and evaluation, zero-shot for SFT / DPO text (spec 1.1)."""
        return self.tok(self._text(problem, fewshot)).input_ids

    def decode(self, ids) -> str:
        return self.tok.decode(ids, skip_special_tokens=True)

    def show(self, problem: dict) -> str:
        return problem["question"]

    def grade(self, problem: dict, response: list[int]) -> tuple[str | None, bool]:
        text = self.decode(response)
        if self.name == "gsm8k":
            pred = checkers.gsm8k_extract(text)
            return pred, pred is not None and checkers.math_equal(pred, problem["gold"])
        pred = checkers.math_extract(text)
        return pred, checkers.math_equal(pred, problem["gold"])

    def truth(self, problem: dict, response: list[int]):
        return None, "none"  # no ground-truth critical token for real data
