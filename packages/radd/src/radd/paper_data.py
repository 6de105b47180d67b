"""Paper-scale data: Hugging Face text datasets on disk, the GPT-2 tokenizer, zero-shot sets.

Nothing is downloaded. Everything is read from `<data-root>/radd/`:

    <data-root>/radd/openwebtext/        datasets.save_to_disk of a Dataset or DatasetDict
                                         with a "train" split and a "text" column
    <data-root>/radd/gpt2/               GPT-2 tokenizer files (tokenizer.json or
                                         vocab.json + merges.txt)
    <data-root>/radd/zero_shot/<name>/   save_to_disk of each zero-shot set with a "test"
                                         split and a "text" column; names: lambada,
                                         wikitext2, ptb, wikitext103, lm1b
    <data-root>/radd/gpt2-large/         GPT-2 large for generative perplexity

Documents are tokenised, an EOS is appended to each, the stream is concatenated and cut into
blocks of L tokens with the remainder dropped (the official packing).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from reprozoo.data import require_layout, resolve_data_root

ZERO_SHOT = ("lambada", "wikitext2", "ptb", "wikitext103", "lm1b")
SOURCE = (
    "the Hugging Face hub (datasets: Skylion007/openwebtext, EleutherAI/lambada_openai, "
    "wikitext (wikitext-2-raw-v1, wikitext-103-raw-v1), ptb_text_only, lm1b; model: gpt2, "
    "gpt2-large). On a machine with internet: datasets.load_dataset(...).save_to_disk(PATH) "
    "and AutoTokenizer/AutoModelForCausalLM.from_pretrained(...).save_pretrained(PATH)"
)


def radd_root(data_root=None) -> Path:
    return resolve_data_root(data_root) / "radd"


def load_tokenizer(path: str | Path):
    """The GPT-2 tokenizer from a local folder (never from the network)."""
    from transformers import AutoTokenizer

    path = Path(path)
    require_layout(path.parent, "GPT-2 tokenizer", [f"{path.name}/*.json"], SOURCE)
    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def _load_split(path: Path, split: str):
    from datasets import DatasetDict, load_from_disk

    data = load_from_disk(str(path))
    if isinstance(data, DatasetDict):
        if split not in data:
            raise ValueError(f"{path} has splits {list(data)}, not {split!r}")
        data = data[split]
    if "text" not in data.column_names:
        raise ValueError(f"{path} has columns {data.column_names}; a 'text' column is needed")
    return data


def pack_documents(texts, tokenizer, length: int, detokenize=None) -> torch.Tensor:
    """Tokenise documents, append EOS to each, concatenate, cut into rows of `length`."""
    ids: list[int] = []
    for text in texts:
        text = detokenize(text) if detokenize else text
        ids.extend(tokenizer.encode(text))
        ids.append(tokenizer.eos_token_id)
    n = len(ids) // length
    if n == 0:
        raise ValueError(
            f"the documents give {len(ids)} tokens, fewer than one sequence of {length}"
        )
    return torch.tensor(np.asarray(ids[: n * length], dtype=np.int64)).view(n, length)


def load_training_corpus(cfg, data_root=None) -> dict:
    """OpenWebText (or any text dataset saved to disk) packed to cfg.length GPT-2 tokens."""
    root = radd_root(data_root)
    require_layout(root, cfg.dataset, [f"{cfg.dataset}/*", f"{cfg.tokenizer}/*.json"], SOURCE)
    tokenizer = load_tokenizer(root / cfg.tokenizer)
    data = _load_split(root / cfg.dataset, "train")
    split = data.train_test_split(test_size=min(0.01, 0.5), seed=0)
    train = pack_documents(split["train"]["text"], tokenizer, cfg.length)
    valid = pack_documents(split["test"]["text"], tokenizer, cfg.length)
    return {
        "train": train,
        "valid": valid,
        "vocab_size": len(tokenizer),
        "meta": {"dataset": str(root / cfg.dataset)},
    }


# Detokenisers of the zero-shot sets (spec 1.7): undo the datasets' own tokenisation.
def _wikitext(text: str) -> str:
    text = text.replace(" @-@ ", "-").replace(" @,@ ", ",").replace(" @.@ ", ".")
    text = re.sub(r" ([.,;:!?')\]])", r"\1", text)
    text = re.sub(r"([(\[]) ", r"\1", text)
    return text.replace("= = ", "== ").replace(" = =", " ==")


def _ptb(text: str) -> str:
    text = text.replace("<unk>", "?").replace(" N ", " 1 ")
    return re.sub(r" (n't|'s|'re|'ve|'m|'ll|'d)\b", r"\1", text).replace(" 's", "'s")


def _lambada(text: str) -> str:
    text = text.replace("“", '"').replace("”", '"').replace("‘", "'").replace("’", "'")
    return "\n" + text.strip()


def _lm1b(text: str) -> str:
    text = re.sub(r" ([.,;:!?'])", r"\1", text)
    return text.replace(" n't", "n't").replace('" ', '"')


DETOKENIZERS = {
    "lambada": _lambada,
    "wikitext2": _wikitext,
    "wikitext103": _wikitext,
    "ptb": _ptb,
    "lm1b": _lm1b,
}


def load_zero_shot(name: str, cfg, data_root=None) -> torch.Tensor:
    """A zero-shot test set packed like the training data (test split, detokenised)."""
    if name not in ZERO_SHOT:
        raise ValueError(f"unknown zero-shot set {name!r}; choose one of {ZERO_SHOT}")
    root = radd_root(data_root)
    require_layout(
        root, f"zero-shot set {name}", [f"zero_shot/{name}/*", f"{cfg.tokenizer}/*.json"], SOURCE
    )
    tokenizer = load_tokenizer(root / cfg.tokenizer)
    data = _load_split(root / "zero_shot" / name, "test")
    return pack_documents(data["text"], tokenizer, cfg.length, DETOKENIZERS[name])


@torch.no_grad()
def generative_perplexity(
    samples: torch.Tensor, evaluator_path: str | Path, batch_size: int = 8
) -> float:
    """Mean over samples of exp(mean token cross-entropy) under a local GPT-2 (official)."""
    from transformers import AutoModelForCausalLM

    path = Path(evaluator_path)
    require_layout(path.parent, "GPT-2 evaluator", [f"{path.name}/config.json"], SOURCE)
    judge = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True).eval()
    ppls = []
    for start in range(0, len(samples), batch_size):
        x = samples[start : start + batch_size]
        logits = judge(x).logits[:, :-1].float()
        ce = torch.nn.functional.cross_entropy(
            logits.transpose(1, 2), x[:, 1:], reduction="none"
        ).mean(dim=1)
        ppls.append(ce.exp())
    return torch.cat(ppls).mean().item()
