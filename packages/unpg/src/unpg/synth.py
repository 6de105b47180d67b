"""SynthID: a procedurally generated open-set face-identity benchmark (no download).

Identities are latent vectors ``z`` grouped in families of look-alikes; a fixed random renderer
turns ``z`` (plus per-image nuisance) into a grayscale "face" of Gaussian parts and a faint
identity texture. Test identities come from new families. A small fraction of training
identities is split into two labels that share ``z`` (label noise, as on MS1M), which puts
near-duplicate "negatives" in the upper tail that UNPG's filter is meant to drop.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from reprozoo.config import ConfigError

# Canonical layout of the parts in [-1, 1]² (x, y): eyes, brows, nose, mouth, cheeks, chin,
# forehead. Mouth and brows carry the expression nuisance.
_PARTS = (
    (-0.38, -0.22),
    (0.38, -0.22),
    (-0.38, -0.45),
    (0.38, -0.45),
    (0.0, 0.08),
    (0.0, 0.45),
    (-0.5, 0.2),
    (0.5, 0.2),
    (0.0, 0.75),
    (0.0, -0.72),
)
_EXPRESSIVE = torch.tensor([0, 0, 1, 1, 0, 1, 0, 0, 0, 0], dtype=torch.bool)
_PARAMS_PER_PART = 6  # dx, dy, amplitude, log σx, log σy, angle
_WAVES = 3


@dataclass(frozen=True)
class SynthConfig:
    """Size and difficulty of the synthetic benchmark.

    Attributes:
        train_families / test_families: families of ``family_size`` identities each.
        images_per_identity: images rendered per identity.
        latent_dim: dimension of the identity latent z.
        tau: spread of identities around their family centre (smaller = harder siblings).
        sigma_expression: latent perturbation of the mouth and brow parts per image.
        duplicated_fraction: fraction of training identities split into two labels.
        image_size: side of the square grayscale images.
        seed: generator seed; the renderer itself is drawn from ``renderer_seed``.
    """

    train_families: int = 100
    test_families: int = 80
    family_size: int = 5
    images_per_identity: int = 8
    latent_dim: int = 24
    tau: float = 1.0
    sigma_expression: float = 0.25
    max_rotation_deg: float = 10.0
    duplicated_fraction: float = 0.015
    image_size: int = 24
    seed: int = 0
    renderer_seed: int = 1234

    def __post_init__(self):
        ints = ("train_families", "test_families", "family_size", "images_per_identity")
        for name in ints:
            if getattr(self, name) < 1:
                raise ConfigError(f"SynthConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.images_per_identity < 2:
            raise ConfigError("SynthConfig.images_per_identity must be >= 2 to form pairs")
        if not 0 <= self.duplicated_fraction < 0.5:
            raise ConfigError(
                f"SynthConfig.duplicated_fraction must be in [0, 0.5), got "
                f"{self.duplicated_fraction}"
            )
        if self.image_size < 8 or self.tau <= 0 or self.sigma_expression < 0:
            raise ConfigError("SynthConfig needs image_size >= 8, tau > 0, sigma_expression >= 0")


@dataclass
class SynthSplit:
    """Rendered images (N×1×S×S in [-1, 1]), labels, identity and family ids."""

    images: torch.Tensor
    labels: torch.Tensor
    identity: torch.Tensor
    family: torch.Tensor
    pose: torch.Tensor  # |rotation| + |yaw squash| per image, for the hard 10-fold variant

    @property
    def num_classes(self) -> int:
        return int(self.labels.max()) + 1


class Renderer:
    """Fixed random maps from an identity latent to part parameters and texture waves."""

    def __init__(self, latent_dim: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        p = len(_PARTS)
        self.parts = torch.randn(latent_dim, p * _PARAMS_PER_PART, generator=g) / math.sqrt(
            latent_dim
        )
        self.waves = torch.randn(latent_dim, _WAVES * 3, generator=g) / math.sqrt(latent_dim)
        self.centres = torch.tensor(_PARTS)

    def render(self, z: torch.Tensor, z_expr: torch.Tensor, size: int) -> torch.Tensor:
        """Faces for latents ``z`` (N×D); expressive parts use ``z_expr``. Returns N×S×S."""
        n, p = z.shape[0], len(_PARTS)
        q = (z @ self.parts).view(n, p, _PARAMS_PER_PART)
        q_expr = (z_expr @ self.parts).view(n, p, _PARAMS_PER_PART)
        q = torch.where(_EXPRESSIVE[None, :, None], q_expr, q)
        axis = torch.linspace(-1, 1, size)
        yy, xx = torch.meshgrid(axis, axis, indexing="ij")
        shift = 4.0 / size  # at most ±2 px
        cx = self.centres[:, 0] + shift * torch.tanh(q[..., 0])
        cy = self.centres[:, 1] + shift * torch.tanh(q[..., 1])
        amp = torch.tanh(q[..., 2] + 0.5)
        sx = 0.12 * torch.exp(0.35 * torch.tanh(q[..., 3]))
        sy = 0.09 * torch.exp(0.35 * torch.tanh(q[..., 4]))
        angle = 0.6 * torch.tanh(q[..., 5])
        dx = xx[None, None] - cx[..., None, None]
        dy = yy[None, None] - cy[..., None, None]
        c, s = torch.cos(angle)[..., None, None], torch.sin(angle)[..., None, None]
        u, v = c * dx + s * dy, -s * dx + c * dy
        blobs = amp[..., None, None] * torch.exp(
            -0.5 * ((u / sx[..., None, None]) ** 2 + (v / sy[..., None, None]) ** 2)
        )
        w = (z @ self.waves).view(n, _WAVES, 3)
        freq, theta, phase = 2.0 + 2.0 * torch.sigmoid(w[..., 0]), w[..., 1], w[..., 2] * math.pi
        proj = (
            xx[None, None] * torch.cos(theta)[..., None, None]
            + yy[None, None] * torch.sin(theta)[..., None, None]
        )
        texture = 0.15 * torch.cos(math.pi * freq[..., None, None] * proj + phase[..., None, None])
        oval = torch.exp(-0.5 * ((xx / 0.8) ** 2 + (yy / 0.95) ** 2) ** 2)
        return (blobs.sum(1) + texture.sum(1)) * oval[None]


def _nuisance(faces: torch.Tensor, g: torch.Generator, max_rot_deg: float):
    """Pose (affine warp), illumination, occlusion and sensor noise; returns images, pose."""
    n, size = faces.shape[0], faces.shape[-1]

    def uniform(lo, hi, *shape):
        return lo + (hi - lo) * torch.rand(n, *shape, generator=g)

    rot = uniform(-1, 1) * math.radians(max_rot_deg)
    scale = uniform(0.9, 1.1)
    squash = uniform(0.8, 1.0)
    shift = uniform(-1, 1, 2) * (4.0 / size)
    cos, sin = torch.cos(rot) / scale, torch.sin(rot) / scale
    theta = torch.stack(
        [
            torch.stack([cos / squash, -sin, shift[:, 0]], 1),
            torch.stack([sin / squash, cos, shift[:, 1]], 1),
        ],
        1,
    )
    grid = F.affine_grid(theta, (n, 1, size, size), align_corners=False)
    img = F.grid_sample(faces[:, None], grid, align_corners=False, padding_mode="zeros")

    # Illumination: a linear gradient, contrast and an offset.
    axis = torch.linspace(-1, 1, size)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    phi = uniform(0, 2 * math.pi)
    gain = uniform(0, 0.6)
    grad = gain[:, None, None] * (
        torch.cos(phi)[:, None, None] * xx + torch.sin(phi)[:, None, None] * yy
    )
    img = img * uniform(0.7, 1.3)[:, None, None, None] + 0.5 * grad[:, None]

    # Accessory: a dark bar at eye height or a random occluding square, p = 0.2.
    occlude = torch.rand(n, generator=g) < 0.2
    bar = (yy - (-0.22)).abs() < 0.12
    top = torch.randint(0, size // 2, (n, 2), generator=g)
    rows = torch.arange(size)
    box = (
        (rows[None, :, None] >= top[:, 0, None, None])
        & (rows[None, :, None] < top[:, 0, None, None] + size // 3)
    ) & (
        (rows[None, None, :] >= top[:, 1, None, None])
        & (rows[None, None, :] < top[:, 1, None, None] + size // 3)
    )
    use_bar = torch.rand(n, generator=g) < 0.5
    mask = torch.where(use_bar[:, None, None], bar[None], box) & occlude[:, None, None]
    img = torch.where(mask[:, None], torch.full_like(img, -0.6), img)

    # Sensor: down-sample to half resolution with p = 0.2, then Gaussian noise.
    low = torch.rand(n, generator=g) < 0.2
    small = F.interpolate(
        F.interpolate(img, scale_factor=0.5, mode="bilinear"), size=size, mode="bilinear"
    )
    img = torch.where(low[:, None, None, None], small, img)
    img = img + 0.05 * torch.randn(img.shape, generator=g)
    return img.clamp(-1, 1), rot.abs() / math.radians(max_rot_deg) + (1 - squash) / 0.2


def _render_split(cfg, renderer, families, g, chunk=2048):
    d, k, n_img = cfg.latent_dim, cfg.family_size, cfg.images_per_identity
    centres = torch.randn(families, d, generator=g)
    z = (centres[:, None] + cfg.tau * torch.randn(families, k, d, generator=g)).reshape(-1, d)
    ids = torch.arange(len(z)).repeat_interleave(n_img)
    images, poses = [], []
    for start in range(0, len(ids), chunk):
        idx = ids[start : start + chunk]
        base = z[idx]
        expr = base + cfg.sigma_expression * torch.randn(base.shape, generator=g)
        faces = renderer.render(base, expr, cfg.image_size)
        img, pose = _nuisance(faces, g, cfg.max_rotation_deg)
        images.append(img)
        poses.append(pose)
    return torch.cat(images), ids, ids // k, torch.cat(poses)


def generate(cfg: SynthConfig) -> tuple[SynthSplit, SynthSplit]:
    """Render the training and test splits; identical for identical configs."""
    renderer = Renderer(cfg.latent_dim, cfg.renderer_seed)
    g = torch.Generator().manual_seed(cfg.seed)
    img, ids, fam, pose = _render_split(cfg, renderer, cfg.train_families, g)
    # Label noise: the second half of a duplicated identity's images gets a new label.
    n_ids = cfg.train_families * cfg.family_size
    n_dup = round(cfg.duplicated_fraction * n_ids)
    dup = torch.randperm(n_ids, generator=g)[:n_dup]
    labels = ids.clone()
    for new, old in enumerate(dup.tolist()):
        members = (ids == old).nonzero().flatten()
        labels[members[len(members) // 2 :]] = n_ids + new
    train = SynthSplit(img, labels, ids, fam, pose)
    t_img, t_ids, t_fam, t_pose = _render_split(cfg, renderer, cfg.test_families, g)
    return train, SynthSplit(t_img, t_ids, t_ids, t_fam, t_pose)


def config_dict(cfg: SynthConfig) -> dict:
    return asdict(cfg)
