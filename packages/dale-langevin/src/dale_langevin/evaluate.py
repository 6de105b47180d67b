"""Sample quality at small scale (spec §7.3), in the feature space of a classifier of the same data.

Inception features mean nothing on 8×8 digits, so a small CNN trained on the training split
supplies the features (its 64-d penultimate layer) and the class predictions. Every metric is
also computed for real training images against the test split, the floor a perfect sampler
would reach at the same sample size.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import wasserstein_distance
from torch import nn

from dale_langevin.data import ImageData
from reprozoo.metrics import frechet_distance, kid


class DigitClassifier(nn.Module):
    """conv 32 → conv 64 → pool → fc 64 (features) → fc 10."""

    def __init__(self, size: int = 8, n_classes: int = 10):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.fc = nn.Linear(64 * (size // 2) ** 2, 64)
        self.head = nn.Linear(64, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.fc(self.conv(x).flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def train_classifier(data: ImageData, epochs: int = 30, seed: int = 0):
    """Train the feature classifier on the training split; return it and its test accuracy."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    clf = DigitClassifier(data.train.shape[-1])
    opt = torch.optim.Adam(clf.parameters(), lr=1e-3)
    for _ in range(epochs):
        order = torch.randperm(len(data.train), generator=gen)
        for start in range(0, len(order), 64):
            idx = order[start : start + 64]
            loss = F.cross_entropy(clf(data.train[idx]), data.train_labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    clf.eval()
    with torch.no_grad():
        acc = float((clf(data.test).argmax(1) == data.test_labels).float().mean())
    return clf, acc


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """k-NN manifold precision and recall (Kynkäänniemi et al. 2019)."""

    def radii(a):
        d = torch.cdist(torch.as_tensor(a), torch.as_tensor(a))
        return d.kthvalue(k + 1, dim=1).values  # +1 skips the point itself

    def inside(points, ref, ref_radii):
        d = torch.cdist(torch.as_tensor(points), torch.as_tensor(ref))
        return float((d <= ref_radii[None]).any(1).float().mean())

    return inside(fake, real, radii(real)), inside(real, fake, radii(fake))


def nearest_distances(a: torch.Tensor, b: torch.Tensor, exclude_self: bool = False):
    """L2 distance from each row of a to its nearest and second-nearest row of b."""
    d = torch.cdist(a.flatten(1).double(), b.flatten(1).double())
    if exclude_self:
        d.fill_diagonal_(math.inf)
    two = d.topk(2, dim=1, largest=False)
    return two.values[:, 0], two.values[:, 1], two.indices[:, 0]


class Evaluator:
    """Holds the classifier and reference statistics; scores one set of samples at a time."""

    def __init__(self, data: ImageData, classifier: nn.Module, kid_subset: int = 100):
        self.data, self.clf, self.kid_subset = data, classifier, kid_subset
        with torch.no_grad():
            raw = classifier.features(data.test)
        # One global scale makes FD and KID read in units of the real features' spread.
        self.scale = float(raw.std()) or 1.0
        self.test_feats = raw.numpy() / self.scale
        counts = torch.bincount(data.test_labels, minlength=10).double()
        self.label_dist = np.clip((counts / counts.sum()).numpy(), 1e-12, None)
        d1, _, _ = nearest_distances(data.test, data.train)
        self.test_nn = d1.numpy()
        self.nn_threshold = float(np.percentile(self.test_nn, 1))

    def __call__(self, pixels: torch.Tensor) -> dict[str, float]:
        with torch.no_grad():
            raw = self.clf.features(pixels)
            probs = torch.softmax(self.clf.head(raw), 1).numpy()
        feats = raw.numpy() / self.scale
        prec, rec = precision_recall(self.test_feats, feats, k=3)
        hist = np.bincount(probs.argmax(1), minlength=10) / len(probs)
        p_y = probs.mean(0)
        d1, d2, _ = nearest_distances(pixels, self.data.train)
        return {
            "fd": frechet_distance(feats, self.test_feats),
            "kid": kid(feats, self.test_feats, subset_size=self.kid_subset, n_subsets=50)[0],
            "precision": prec,
            "recall": rec,
            "class_entropy": float(-(hist * np.log(np.clip(hist, 1e-12, None))).sum()),
            "min_class_share": float(hist.min()),
            "kl_labels": float((hist * np.log(np.clip(hist, 1e-12, None) / self.label_dist)).sum()),
            "confidence": float(probs.max(1).mean()),
            "is_score": float(
                np.exp((probs * (np.log(probs + 1e-12) - np.log(p_y + 1e-12))).sum(1).mean())
            ),
            "nn_l2_median": float(d1.median()),
            "memorised_share": float((d1 < self.nn_threshold).double().mean()),
            "nn_ratio_share": float((d1 / d2 < 1 / 3).double().mean()),
            "pixel_w1": float(
                wasserstein_distance(pixels.flatten().numpy(), self.data.test.flatten().numpy())
            ),
        }

    def real_floor(self, n: int, seed: int) -> dict[str, float]:
        """The same metrics for n real training images (what a perfect sampler would score)."""
        idx = torch.randperm(len(self.data.train), generator=torch.Generator().manual_seed(seed))
        out = self(self.data.train[idx[:n]])
        # Training images are their own nearest neighbours; measure held-out test images instead.
        d1, d2, _ = nearest_distances(self.data.test, self.data.train)
        out["nn_l2_median"] = float(d1.median())
        out["memorised_share"] = float((d1 < self.nn_threshold).double().mean())
        out["nn_ratio_share"] = float((d1 / d2 < 1 / 3).double().mean())
        return out
