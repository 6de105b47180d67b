import os
import random

import pytest
import torch

os.environ.setdefault("REPROZOO_PROGRESS", "0")
torch.set_num_threads(1)


def _fabricate_samples(pipe, n_samples: int, seed: int = 0) -> None:
    """Write a ``samples`` stage artefact from the noisy corpus writer, as if the base model
    had sampled it, so that the later stages run on trajectories with known errors."""
    from cdpo import arith
    from reprozoo.results import atomic_write_json

    t, rng = pipe.task, random.Random(seed)
    rows = []
    for q in t.train:
        resp = [
            t.tok.encode(" ".join(arith.write_solution(q, rng, t.noise).words)) + [t.eos_id]
            for _ in range(n_samples)
        ]
        graded = [t.grade(q, r) for r in resp]
        rows.append(
            {
                "responses": resp,
                "answers": [a for a, _ in graded],
                "correct": [c for _, c in graded],
            }
        )
    wrong = sum(not c for r in rows for c in r["correct"]) / (len(rows) * n_samples)
    atomic_write_json(
        pipe.dir / "samples.json", {"rows": rows, "wrong_share": wrong, "malformed": 0}
    )


@pytest.fixture
def quick_cfg():
    from cdpo.config import profile

    return profile("quick")


@pytest.fixture(scope="session")
def fabricate_samples():
    return _fabricate_samples
