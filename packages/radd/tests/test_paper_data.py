"""The paper-scale path on tiny fabricated files in the real formats (no download)."""

import pytest
import torch
from datasets import Dataset, DatasetDict
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from radd.config import profile
from radd.evaluate import estimate_bound
from radd.paper_data import generative_perplexity, load_zero_shot, pack_documents
from radd.schedule import LogLinearSchedule
from radd.train import load_corpus, train
from reprozoo.data import DataNotFoundError

TEXT = [
    "The cat sat on the mat. It was a sunny day and the cat was happy.",
    "Diffusion models @-@ like RADD @-@ unmask tokens in any order.",
    "A Markov chain has an exact likelihood , which makes it a good test .",
] * 20


def _fabricate(root):
    base = root / "radd"
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(TEXT, trainer)
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>").save_pretrained(
        base / "gpt2"
    )
    DatasetDict({"train": Dataset.from_dict({"text": TEXT})}).save_to_disk(base / "openwebtext")
    DatasetDict({"test": Dataset.from_dict({"text": TEXT[:6]})}).save_to_disk(
        base / "zero_shot" / "wikitext2"
    )
    return base


def test_missing_paper_data_names_the_path_layout_and_source(tmp_path):
    cfg = profile("paper")
    with pytest.raises(DataNotFoundError) as err:
        load_corpus(cfg, tmp_path)
    message = str(err.value)
    assert str(tmp_path / "radd") in message and "openwebtext" in message
    assert "save_to_disk" in message and "--data-root" in message


def test_paper_path_trains_and_scores_on_fabricated_files(tmp_path):
    base = _fabricate(tmp_path)
    cfg = profile(
        "paper", model_size="tiny", length=16, batch_size=4, steps=3, warmup=1, checkpoint_every=0
    )
    corpus = load_corpus(cfg, tmp_path)
    assert corpus["vocab_size"] == 300 or corpus["vocab_size"] < 300
    assert corpus["train"].shape[1] == 16 and corpus["train"].max() < corpus["vocab_size"]
    result = train(cfg, 0, tmp_path / "run", corpus=corpus, quiet=True)
    assert len(result["history"]) == 3

    zero_shot = load_zero_shot("wikitext2", cfg, tmp_path)
    bound = estimate_bound(result["model"], zero_shot, "lambda_dce", LogLinearSchedule(), 2)
    assert bound["ppl"] > 1.0

    judge = GPT2LMHeadModel(
        GPT2Config(vocab_size=300, n_positions=32, n_embd=16, n_layer=1, n_head=2)
    )
    judge.save_pretrained(base / "gpt2-large")
    gen_ppl = generative_perplexity(corpus["train"][:4], base / "gpt2-large")
    assert 1.0 < gen_ppl < 1e4


def test_packing_appends_eos_and_drops_the_remainder():
    class Tok:
        eos_token_id = 99

        def encode(self, text):
            return [len(w) for w in text.split()]

    packed = pack_documents(["a bb ccc", "dddd"], Tok(), 3)
    assert torch.equal(packed, torch.tensor([[1, 2, 3], [99, 4, 99]]))
    with pytest.raises(ValueError, match="fewer than one sequence"):
        pack_documents(["a"], Tok(), 8)
