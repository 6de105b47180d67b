"""PETAL and its baselines as online test-time adapters, selectable by name.

Every adapter follows the same protocol: `adapter(x)` returns the prediction (logits) for the
batch x computed BEFORE x changes any weight, then adapts on x. `adapter.predict(x)` returns the
same prediction without adapting (used by the no-look-ahead test).

| name | starts from | updates | prediction |
|---|---|---|---|
| `source` | source model, stored BN statistics | nothing | source logits |
| `bn` | source model, batch BN statistics | nothing | model logits |
| `tent` | source model, batch BN statistics | BN affine, entropy, Adam | pre-update logits |
| `cotta` | source model | all, soft CE to EMA teacher, random restore | teacher logits |
| `petal-sres` | SWAG mean | all, soft CE + λ·prior, random restore | teacher logits |
| `petal-fim` | SWAG mean | all, soft CE + λ·prior, Fisher-quantile restore | teacher logits |
"""

from __future__ import annotations

import copy
from typing import ClassVar

import torch
from torch import Tensor, nn

from petal.augment import augment_batch
from petal.config import AdaptConfig, ConfigError
from petal.model import (
    adaptable_copy,
    batchnorm_layers,
    check_images,
    grouped_batch_norm,
    parameter_list,
)
from petal.objectives import (
    bernoulli_restore_masks,
    ema_update_,
    entropy,
    fim_restore_masks,
    gaussian_prior_penalty,
    restore_,
    soft_cross_entropy,
    symmetric_cross_entropy,
)


class Posterior(nn.Module):
    """The diagonal Gaussian source posterior N(μ, diag(s²)) from SWAG, keyed by parameter name."""

    def __init__(self, mean: dict[str, Tensor], var: dict[str, Tensor]):
        super().__init__()
        if mean.keys() != var.keys():
            raise ValueError("SWAG mean and variance cover different parameters")
        self.names = list(mean)
        for i, name in enumerate(self.names):
            self.register_buffer(f"mean_{i}", mean[name].detach().clone().float())
            self.register_buffer(f"var_{i}", var[name].detach().clone().float())

    def mean(self) -> list[Tensor]:
        return [getattr(self, f"mean_{i}") for i in range(len(self.names))]

    def var(self) -> list[Tensor]:
        return [getattr(self, f"var_{i}") for i in range(len(self.names))]


class Adapter(nn.Module):
    """Base class: holds the config and the random generator of one adaptation run."""

    name: ClassVar[str] = ""

    def __init__(self, model: nn.Module, cfg: AdaptConfig, seed: int = 0):
        super().__init__()
        self.cfg = cfg
        # Separate streams for augmentation draws and restoration masks, so that switching
        # the restoration rule never changes the augmentations a run sees.
        self.generator = torch.Generator().manual_seed(int(seed))
        self.restore_generator = torch.Generator().manual_seed(int(seed) + 1_000_003)
        self.optimizer: torch.optim.Optimizer | None = None

    def forward(self, x: Tensor) -> Tensor:
        check_images(x)
        return self.predict_and_adapt(x)

    def predict(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def predict_and_adapt(self, x: Tensor) -> Tensor:
        return self.predict(x)

    def _make_optimizer(self, params: list[Tensor]) -> torch.optim.Optimizer:
        c = self.cfg
        if c.optimizer == "adam":
            return torch.optim.Adam(
                params, lr=c.lr, betas=(c.beta, 0.999), weight_decay=c.weight_decay
            )
        return torch.optim.SGD(
            params,
            lr=c.lr,
            momentum=c.momentum,
            nesterov=c.nesterov,
            weight_decay=c.weight_decay,
        )

    def adaptation_state(self) -> dict:
        """Everything that changes during a run: weights, optimizer, random generator."""
        state = {
            "modules": self.state_dict(),
            "generator": self.generator.get_state(),
            "restore_generator": self.restore_generator.get_state(),
        }
        if self.optimizer is not None:
            state["optimizer"] = self.optimizer.state_dict()
        return state

    def load_adaptation_state(self, state: dict) -> None:
        self.load_state_dict(state["modules"])
        self.generator.set_state(state["generator"].to(torch.uint8).cpu())
        self.restore_generator.set_state(state["restore_generator"].to(torch.uint8).cpu())
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])


class SourceAdapter(Adapter):
    """No adaptation: the source model with its stored BatchNorm statistics."""

    name = "source"

    def __init__(self, model: nn.Module, cfg: AdaptConfig, seed: int = 0, posterior=None):
        super().__init__(model, cfg, seed)
        self.model = copy.deepcopy(model).eval()

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        return self.model(x)


class BNAdapter(Adapter):
    """Test-time normalisation: every BatchNorm layer uses the current batch's statistics."""

    name = "bn"

    def __init__(self, model: nn.Module, cfg: AdaptConfig, seed: int = 0, posterior=None):
        super().__init__(model, cfg, seed)
        self.model = adaptable_copy(model)

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        return self.model(x)


class TentAdapter(Adapter):
    """TENT-continual: entropy minimisation over BatchNorm affine parameters, never reset."""

    name = "tent"

    def __init__(self, model: nn.Module, cfg: AdaptConfig, seed: int = 0, posterior=None):
        super().__init__(model, cfg, seed)
        self.model = adaptable_copy(model)
        self.model.requires_grad_(False)
        params = []
        for bn in batchnorm_layers(self.model):
            for p in (bn.weight, bn.bias):
                if p is not None:
                    p.requires_grad_(True)
                    params.append(p)
        self.optimizer = self._make_optimizer(params)

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        return self.model(x)

    def predict_and_adapt(self, x: Tensor) -> Tensor:
        with torch.enable_grad():
            logits = self.model(x)
            entropy(logits).mean().backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return logits.detach()


class MeanTeacherAdapter(Adapter):
    """Student-teacher-anchor adaptation shared by CoTTA and both PETAL variants.

    Per batch (Section 1.10 of the spec):
      1. anchor confidence on the clean batch decides whether the teacher target is the
         average of `n_aug` augmented teacher passes (logits averaged) or the plain pass;
      2. student loss = soft CE(teacher → student) [+ λ · Gaussian prior toward the SWAG
         posterior, Eq. 12 of the appendix];
      3. PETAL-FIM: Fisher masks from the squared gradient, before the optimiser step;
      4. optimiser step, then the EMA teacher update;
      5. restore the masked parameters to the source (SWAG mean) values;
      6. return the teacher target of step 1 as the prediction.
    """

    restoration: ClassVar[str] = "sres"
    uses_prior: ClassVar[bool] = False

    def __init__(
        self, model: nn.Module, cfg: AdaptConfig, seed: int = 0, posterior: Posterior | None = None
    ):
        super().__init__(model, cfg, seed)
        self.student = adaptable_copy(model)
        self.teacher = adaptable_copy(model).requires_grad_(False)
        self.anchor = adaptable_copy(model).requires_grad_(False)
        self.source = adaptable_copy(model).requires_grad_(False)  # restoration target
        if self.uses_prior:
            if posterior is None:
                raise ConfigError(f"method {self.name!r} needs the SWAG source posterior")
            names = [n for n, _ in self.student.named_parameters()]
            if posterior.names != names:
                raise ValueError(
                    "the SWAG posterior does not match the model's parameters; refit it with "
                    "`petal swag` for this architecture"
                )
            self.posterior = posterior
        self.optimizer = self._make_optimizer(parameter_list(self.student))
        self.last_augmented = False
        self.last_restored = 0

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        # Step 1: the anchor's batch-mean confidence triggers the augmentation average.
        confidence = self.anchor(x).softmax(dim=1).max(dim=1).values.mean()
        augment = bool(confidence < self.cfg.ap)
        self.last_augmented = augment
        plain = self.teacher(x)
        if not (augment or self.cfg.always_augment):
            return plain
        # Teacher logits averaged over the augmented draws (logits, not probabilities); each
        # draw is normalised with its own batch statistics, `aug_chunk` draws per forward.
        total = torch.zeros_like(plain)
        remaining = self.cfg.n_aug
        while remaining > 0:
            n = min(self.cfg.aug_chunk, remaining)
            views = augment_batch(x, n, self.generator)
            with grouped_batch_norm(self.teacher, n):
                total += self.teacher(views).view(n, *plain.shape).sum(dim=0)
            remaining -= n
        averaged = total / self.cfg.n_aug
        return averaged if augment else plain

    def loss(self, z: Tensor, t: Tensor) -> Tensor:
        ce = symmetric_cross_entropy(z, t) if self.cfg.symmetric_ce else soft_cross_entropy(z, t)
        loss = ce.mean()
        if self.uses_prior:
            prior = gaussian_prior_penalty(
                parameter_list(self.student), self.posterior.mean(), self.posterior.var()
            )
            loss = loss + self.cfg.spw * prior
        return loss

    def predict_and_adapt(self, x: Tensor) -> Tensor:
        t = self.predict(x)

        # Step 2: student loss and its gradient.
        params = parameter_list(self.student)
        with torch.enable_grad():
            self.loss(self.student(x), t).backward()

        # Step 3: the Fisher masks use the gradient of this batch, before the step.
        masks = None
        if self.restoration == "fim":
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            masks = fim_restore_masks(grads, self.cfg.perc)

        # Step 4: optimiser step, then EMA (the teacher sees the freshly stepped student).
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        ema_update_(parameter_list(self.teacher), params, self.cfg.ema)

        # Step 5: restoration toward the source weights (SWAG mean for PETAL).
        if self.restoration == "sres":
            masks = bernoulli_restore_masks(params, self.cfg.rst, self.restore_generator)
        self.last_restored = restore_(params, parameter_list(self.source), masks)
        return t


class CoTTAAdapter(MeanTeacherAdapter):
    name = "cotta"


class PetalSResAdapter(MeanTeacherAdapter):
    name = "petal-sres"
    uses_prior = True


class PetalFIMAdapter(MeanTeacherAdapter):
    name = "petal-fim"
    uses_prior = True
    restoration = "fim"


METHODS: dict[str, type[Adapter]] = {
    cls.name: cls
    for cls in (
        SourceAdapter,
        BNAdapter,
        TentAdapter,
        CoTTAAdapter,
        PetalSResAdapter,
        PetalFIMAdapter,
    )
}


def build_adapter(
    model: nn.Module, cfg: AdaptConfig, seed: int = 0, posterior: Posterior | None = None
) -> Adapter:
    """The adapter named by `cfg.method`, wrapped around a copy of `model`."""
    if cfg.method not in METHODS:
        raise ConfigError(f"unknown method {cfg.method!r}; choose one of {sorted(METHODS)}")
    return METHODS[cfg.method](model, cfg, seed=seed, posterior=posterior)
