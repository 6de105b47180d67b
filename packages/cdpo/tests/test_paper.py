"""Paper-scale path on tiny fabricated files in the real formats, and the answer checkers."""

import json

import pytest

from cdpo import checkers
from cdpo.config import profile, replace
from reprozoo.data import DataNotFoundError


def test_gsm8k_extraction_on_tricky_strings():
    assert checkers.gsm8k_extract("So she pays $1,234. The answer is $1,234.") == "1234"
    assert checkers.gsm8k_extract("3 + 4 = 7 and then 9. The answer is 12") == "12"
    assert checkers.gsm8k_extract("first 3, then 4") == "4"
    assert checkers.gsm8k_extract("The answer is -3.50 dollars") == "-3.5"
    assert checkers.gsm8k_extract("The answer is 7.\n\nQuestion: x? The answer is 9") == "7"
    assert checkers.gsm8k_extract("The answer is €2,000,000.") == "2000000"
    assert checkers.gsm8k_extract("no digits here") is None
    assert checkers.gsm8k_gold("5 * 3 = 15\n#### 1,015") == "1015"
    assert checkers.gsm8k_gold("no marker") is None


def test_math_extraction_and_equivalence():
    assert (
        checkers.last_boxed("a \\boxed{1} b \\boxed{\\frac{\\sqrt{2}}{2}} c")
        == "\\frac{\\sqrt{2}}{2}"
    )
    assert checkers.math_extract("no box") is None
    assert checkers.math_equal(checkers.math_extract("so \\boxed{\\dfrac12}."), "\\frac{1}{2}")
    assert checkers.math_equal("0.5", "\\frac{1}{2}")
    assert checkers.math_equal("1/2", "\\frac12")
    assert checkers.math_equal("50\\%", "0.5")
    assert checkers.math_equal("50", "0.5")  # the percentage slack of the released checker
    assert checkers.math_equal("\\sqrt2", "\\sqrt{2}")
    assert checkers.math_equal("\\left( 1, 2 \\right)", "(1,2)")
    assert checkers.math_equal("90^\\circ", "90")
    assert checkers.math_equal("\\text{ 5 }", "5")
    assert not checkers.math_equal("0.51", "\\frac{1}{2}")
    assert not checkers.math_equal(None, "3")
    assert not checkers.math_equal("", "3")


def fabricate(root, model_dir):
    """Tiny GSM8K / MATH500 jsonl files and a tiny random Llama with a byte-level tokenizer."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    rows = [
        {
            "question": f"Sam has {i} apples and buys {i + 2} more. How many?",
            "answer": f"{i} + {i + 2} = {2 * i + 2}\n#### {2 * i + 2}",
        }
        for i in range(6)
    ]
    rows.append({"question": "broken row", "answer": "no final marker"})
    (root / "gsm8k").mkdir(parents=True)
    for split in ("train", "test"):
        (root / "gsm8k" / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (root / "math").mkdir()
    (root / "math500").mkdir()
    m = [{"problem": "What is $1+1$?", "solution": "It is $\\boxed{2}$.", "answer": "2"}]
    (root / "math" / "train.jsonl").write_text(json.dumps(m[0]))
    (root / "math500" / "test.jsonl").write_text(json.dumps(m[0]))
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        [r["question"] + r["answer"] for r in rows] + ["The answer is"],
        vocab_size=300,
        special_tokens=["<s>", "</s>"],
    )
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>")
    tok.save_pretrained(model_dir)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(model_dir)
    return tok


def test_missing_data_stops_with_the_expected_layout(tmp_path):
    from cdpo.paper import PaperTask

    cfg = replace(profile("paper"), model=str(tmp_path / "nope"))
    with pytest.raises(DataNotFoundError, match="gsm8k/train.jsonl"):
        PaperTask(cfg, tmp_path)


def test_paper_task_runs_the_pipeline_with_lora(tmp_path, caplog):
    from cdpo.pipeline import Pipeline
    from reprozoo.results import atomic_write_json

    tok = fabricate(tmp_path / "data", tmp_path / "model")
    cfg = replace(
        profile("paper"),
        model=str(tmp_path / "model"),
        n_train=6,
        n_test=6,
        n_samples=2,
        max_new_tokens=4,
        posneg_batch=2,
        pref_batch=2,
        pref_epochs=1,
        methods=("dpo", "cdpo_code"),
        seeds=(0,),
    )
    pipe = Pipeline(cfg, tmp_path / "run", data_root=tmp_path / "data")
    t = pipe.task
    assert len(t.train) == 6 and t.malformed  # the broken row is reported, not hidden
    assert t.decode(t.prompt(t.train[0], fewshot=True)).startswith("Question: A baker")
    assert t.decode(t.prompt(t.train[0])).startswith("Question: Sam has 0 apples")
    good = tok(" 0 + 2 = 2. The answer is 2.").input_ids + [t.eos_id]
    bad = tok(" 0 + 2 = 3. The answer is 3.").input_ids + [t.eos_id]
    assert t.grade(t.train[0], good) == ("2", True) and t.grade(t.train[0], bad)[1] is False
    # Stage artefact as if sampled: per question one right and one wrong solution.
    rows = []
    for q in t.train:
        g = q["gold"]
        resp = [
            tok(f" The answer is {g}.").input_ids + [t.eos_id],
            tok(f" The answer is {int(g) + 1}.").input_ids + [t.eos_id],
        ]
        rows.append({"responses": resp, "answers": [g, str(int(g) + 1)], "correct": [True, False]})
    atomic_write_json(pipe.dir / "samples.json", {"rows": rows, "wrong_share": 0.5, "malformed": 0})
    results = pipe.run_methods()
    assert set(results) == {"base", "dpo", "cdpo_code"}
    assert 0 <= results["cdpo_code"][0]["accuracy"] <= 1
    assert len(pipe.selection()["pairs"]) == 6
