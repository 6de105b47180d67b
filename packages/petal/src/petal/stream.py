"""Running an adapter over the lifelong stream: predict, then adapt; checkpoint and resume."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from petal import __version__
from petal.data import Domain
from petal.method import Adapter, MeanTeacherAdapter
from reprozoo.checkpoint import load_state, save_state
from reprozoo.metrics import classification_metrics
from reprozoo.runtime import progress


class StreamInterrupted(RuntimeError):
    """Raised by `run_stream(stop_after=...)` to simulate a killed run (tests)."""


@dataclass
class StreamResult:
    domains: list[str]
    metrics: list[dict[str, float]]  # per domain: error, nll, brier, ece
    batch_errors: list[float] = field(default_factory=list)
    augmented_share: float = 0.0
    seconds: float = 0.0

    def mean(self, key: str) -> float:
        return sum(m[key] for m in self.metrics) / len(self.metrics)


def _batches(domain: Domain, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Consecutive batches; a last batch of one image is merged into the previous one."""
    n = len(domain.x)
    cuts = list(range(0, n, batch_size))
    if len(cuts) > 1 and n - cuts[-1] < 2:
        cuts.pop()
    bounds = [*cuts, n]
    return [(domain.x[a:b], domain.y[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def run_stream(
    adapter: Adapter,
    domains: list[Domain],
    batch_size: int,
    *,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 0,
    config: dict | None = None,
    stop_after: int | None = None,
    desc: str = "stream",
) -> StreamResult:
    """Feed every batch of every domain, in order, to `adapter`; collect its predictions.

    With `checkpoint`, the adaptation state (weights, optimiser, random generator), the
    predictions so far and the stream position are saved every `checkpoint_every` batches
    and at the end, and an existing checkpoint is resumed (refused if its config differs).
    """
    plan = [(d, xb, yb) for d, dom in enumerate(domains) for xb, yb in _batches(dom, batch_size)]
    logits: list[torch.Tensor] = []
    batch_errors: list[float] = []
    augmented = 0
    position = 0
    config = dict(config or {}, batch_size=batch_size, domains=[d.name for d in domains])
    if checkpoint is not None and (Path(checkpoint) / "meta.json").exists():
        state, _ = load_state(checkpoint, package="petal", config=config)
        adapter.load_adaptation_state(state["adapter"])
        logits = list(state["logits"])
        batch_errors = list(state["batch_errors"])
        augmented, position = int(state["augmented"]), int(state["position"])

    def save() -> None:
        if checkpoint is not None:
            state = {
                "adapter": adapter.adaptation_state(),
                "logits": logits,
                "batch_errors": batch_errors,
                "augmented": augmented,
                "position": position,
            }
            save_state(
                checkpoint,
                state,
                package="petal",
                version=__version__,
                config=config,
                step=position,
            )

    device = next(adapter.parameters(), torch.empty(0)).device
    start = time.perf_counter()
    for _, xb, yb in progress(plan[position:], desc=desc, leave=False):
        if stop_after is not None and position >= stop_after:
            raise StreamInterrupted(f"stopped after {position} batches")
        out = adapter(xb.to(device)).detach().cpu()
        logits.append(out)
        batch_errors.append(float((out.argmax(1) != yb).float().mean()))
        if isinstance(adapter, MeanTeacherAdapter) and adapter.last_augmented:
            augmented += 1
        position += 1
        if checkpoint_every and position % checkpoint_every == 0:
            save()
    save()

    metrics, offset = [], 0
    for dom in domains:
        count = len(_batches(dom, batch_size))
        dom_logits = torch.cat(logits[offset : offset + count])
        metrics.append(classification_metrics(dom_logits, dom.y))
        offset += count
    return StreamResult(
        domains=[d.name for d in domains],
        metrics=metrics,
        batch_errors=batch_errors,
        augmented_share=augmented / max(len(plan), 1),
        seconds=time.perf_counter() - start,
    )
