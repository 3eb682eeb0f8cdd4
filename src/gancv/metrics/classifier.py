"""A small CNN classifier: the `digits` / `classifier:RUN` feature extractor, the GAN-test
scorer, the CAS (GAN-train) learner and the augmentation benchmark's learner.

One recipe everywhere (same network, same optimiser, same steps), so a number measured with it
changes only because the training data changed. Training is seeded and runs on the CPU in one
thread's worth of work (a few seconds at 32 px), so a cached extractor is reproducible bit for
bit on the same machine.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import GancvError
from ..models.base import ConfigModule, check_shape
from ..training.checkpoint import atomic_write_json, load_weights, save_weights

FEATURE_DIM = 128


WORK_SIZE = 16  # the network sees at most 16x16: enough for digits (8x8 native), cheap on a CPU


class Classifier(ConfigModule):
    """(resize to <= 16 px) -> conv-pool x2 -> 4x4 -> 128-d embedding -> classes."""

    registry_name = "classifier"

    def __init__(self, channels: int = 1, size: int = 32, num_classes: int = 10, width: int = 32):
        super().__init__()
        self.channels, self.size, self.num_classes = channels, size, num_classes
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(True), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(True), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(),
        )
        self.embed = nn.Linear(2 * width * 16, FEATURE_DIM)
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(0.3), nn.Linear(FEATURE_DIM, num_classes))

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        work = min(self.size, WORK_SIZE)
        check_shape("Classifier input", x, (None, self.channels, work, work))
        # Pre-activation embedding as features: full rank, so FID's covariance is well conditioned.
        feats = self.embed(self.body(x))
        return feats, self.head(feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features_and_logits(x)[1]


def prepare(images: torch.Tensor, channels: int, size: int) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float [-1, 1] at the classifier's channels and size."""
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise GancvError(f"expected uint8 images (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
    x = images.float().div(127.5).sub(1.0)
    if x.shape[1] != channels:
        x = x.mean(1, keepdim=True) if channels == 1 else x.expand(-1, channels, -1, -1)
    work = min(size, WORK_SIZE)
    if x.shape[-1] != work or x.shape[-2] != work:
        x = F.interpolate(x, size=(work, work), mode="bilinear", antialias=True, align_corners=False)
    return x


def _shift(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    # Random translation by up to 1/8 of the size: the cheap augmentation that makes a digit
    # classifier robust to the off-centre strokes generators produce.
    pad = max(1, x.shape[-1] // 8)
    padded = F.pad(x, (pad, pad, pad, pad), value=-1.0)
    dx, dy = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,), generator=g))
    return padded[..., dy : dy + x.shape[-2], dx : dx + x.shape[-1]]


DEFAULT_STEPS = 500  # ~99% held-out accuracy on the real digits (98.7% at 600, 96% at 300)


@dataclass
class TrainRecipe:
    steps: int = 0  # 0 = DEFAULT_STEPS, read at call time so tests can shorten it
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0


def train_classifier(images: torch.Tensor, labels: torch.Tensor, num_classes: int, recipe: TrainRecipe | None = None,
                     size: int | None = None, channels: int | None = None,
                     weights: torch.Tensor | None = None, loss_weights: torch.Tensor | None = None,
                     smoothing: torch.Tensor | None = None, mixup: float = 0.0,
                     init: Classifier | None = None) -> Classifier:
    """Train the standard classifier on uint8 images and int labels (CPU, seeded).

    ``weights``: per-image sampling weights (e.g. to draw real and synthetic images equally
    often however many of each there are); uniform when None. ``loss_weights`` (per image, the
    batch loss is their weighted mean), ``smoothing`` (per-image label smoothing) and ``mixup``
    (Beta(a, a) mixup of images and targets within each batch) let augmentation data count
    differently from real data; all off by default, which keeps the plain cross-entropy step.
    ``init``: start from a copy of this classifier's weights (fine-tuning; ``init`` is unchanged)
    with a fresh optimizer and schedule; the batches drawn are those of a run from scratch."""
    recipe = recipe or TrainRecipe()
    if recipe.steps <= 0:
        recipe = TrainRecipe(DEFAULT_STEPS, recipe.batch_size, recipe.lr, recipe.seed)
    if len(images) == 0:
        raise GancvError("cannot train a classifier on zero images")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise GancvError(f"labels must be in 0..{num_classes - 1} to train the classifier")
    channels = channels or images.shape[1]
    size = size or images.shape[-1]
    g = torch.Generator().manual_seed(recipe.seed)
    soft = loss_weights is not None or smoothing is not None or mixup > 0
    if soft:
        loss_weights = torch.ones(len(images)) if loss_weights is None else loss_weights.float()
        smoothing = torch.zeros(len(images)) if smoothing is None else smoothing.float()
        beta = np.random.default_rng(recipe.seed)  # mixup's coefficients, apart from g's stream
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)  # init and dropout from a private, seeded stream
        model = Classifier(channels=channels, size=size, num_classes=num_classes)
        if init is not None:
            model.load_state_dict(init.state_dict())
        x = prepare(images, channels, size)
        y = labels.long()
        opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, recipe.steps)
        model.train()
        for _ in range(recipe.steps):
            if weights is None:
                idx = torch.randint(0, len(x), (min(recipe.batch_size, len(x)),), generator=g)
            else:
                idx = torch.multinomial(weights.double(), recipe.batch_size, replacement=True, generator=g)
            if soft:
                loss = _soft_loss(model, _shift(x[idx], g), y[idx], num_classes, loss_weights[idx],
                                  smoothing[idx], mixup, beta)
            else:
                loss = F.cross_entropy(model(_shift(x[idx], g)), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return model.eval().requires_grad_(False)


def _soft_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int, w: torch.Tensor,
               eps: torch.Tensor, mixup: float, beta: np.random.Generator) -> torch.Tensor:
    target = F.one_hot(y, num_classes).float() * (1 - eps[:, None]) + eps[:, None] / num_classes
    if mixup > 0:
        # Each image is mixed with another of the same batch (real with synthetic when both are drawn).
        lam = float(beta.beta(mixup, mixup))
        perm = torch.from_numpy(beta.permutation(len(x)))
        x, target, w = lam * x + (1 - lam) * x[perm], lam * target + (1 - lam) * target[perm], lam * w + (1 - lam) * w[perm]
    per_image = -(target * F.log_softmax(model(x), dim=1)).sum(1)
    return (w * per_image).sum() / w.sum()


@torch.no_grad()
def run_classifier(model: Classifier, images: torch.Tensor, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (N, 128), logits (N, K)) for uint8 images, in batches."""
    feats, logits = [], []
    for i in range(0, len(images), batch_size):
        f, lg = model.features_and_logits(prepare(images[i : i + batch_size], model.channels, model.size))
        feats.append(f)
        logits.append(lg)
    if not feats:
        return torch.empty(0, FEATURE_DIM), torch.empty(0, model.num_classes)
    return torch.cat(feats), torch.cat(logits)


def accuracy(model: Classifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    _, logits = run_classifier(model, images)
    return float((logits.argmax(1) == labels).float().mean())


# ---- cache ---------------------------------------------------------------------------------------
def cache_root() -> Path:
    """``$GANCV_CACHE`` or ``~/.cache/gancv``: trained extractors and reference statistics."""
    return Path(os.environ.get("GANCV_CACHE") or Path.home() / ".cache" / "gancv")


def cache_key(parts: dict[str, Any]) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def save_classifier(model: Classifier, directory: Path, meta: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    save_weights(model, directory / "classifier.safetensors")
    # config.json last: its presence marks a complete cache entry.
    atomic_write_json(directory / "config.json", {"classifier": model.config, **meta})


def load_classifier(directory: Path) -> Classifier | None:
    cfg_path = directory / "config.json"
    if not cfg_path.is_file():
        return None
    try:
        info = json.loads(cfg_path.read_text())
        kwargs = {k: v for k, v in info["classifier"].items() if k != "name"}
        model = Classifier(**kwargs)
        load_weights(model, directory / "classifier.safetensors")
    except (OSError, ValueError, KeyError, TypeError, GancvError):
        return None  # a damaged cache entry is rebuilt, never trusted
    return model.eval().requires_grad_(False)


def _cached(where: Path, train: Callable[[], tuple[Classifier, dict[str, Any]]],
            fits: Callable[[Classifier, dict[str, Any]], bool]) -> tuple[Classifier, dict[str, Any]]:
    """The classifier cached in ``where`` with its saved meta data, or ``train()``'s, then cached.

    An entry that does not load or does not ``fit`` is rebuilt, never trusted."""
    cached = load_classifier(where)
    if cached is not None:
        try:
            meta = json.loads((where / "config.json").read_text())
            if fits(cached, meta):
                return cached, meta
        except (OSError, ValueError, KeyError, TypeError):
            pass
    model, meta = train()
    save_classifier(model, where, meta)
    return model, meta


def classifier_for_data(spec: str, size: int, channels: int, directory: Path | None = None,
                        log: Any = None) -> Classifier:
    """The standard classifier trained on the real data set ``spec`` at ``size`` px, cached.

    Cached under ``directory`` (e.g. ``RUN/classifier``) or the cache root keyed by
    data + resolution + channels + recipe, so it is trained once per machine.
    """
    from ..data import load_data

    recipe = TrainRecipe(steps=DEFAULT_STEPS)
    key = {"data": spec, "size": size, "channels": channels, "recipe": recipe.__dict__, "version": 1}
    where = directory or cache_root() / "classifiers" / f"{_slug(spec)}-{size}px-{channels}c-{cache_key(key)}"

    def train() -> tuple[Classifier, dict[str, Any]]:
        bundle = load_data(spec, image_size=size, channels=channels)
        if bundle.kind != "image":
            raise GancvError(f"{spec} is not an image data set; image metrics need images")
        if bundle.num_classes == 0 or bundle.x is None or bundle.y is None:
            raise GancvError(f"{spec} has no class labels (or is too large to hold in memory), so no classifier can be "
                             "trained on it; use --features inception or a labelled data set")
        if log:
            log(f"training the {spec} classifier at {size} px (once; cached in {where})")
        model = train_classifier(bundle.x, bundle.y, bundle.num_classes, recipe, size=size, channels=channels)
        return model, {"data": spec, "class_names": bundle.class_names, "key": key}

    return _cached(where, train, fits=lambda m, meta: m.size == size and m.channels == channels)[0]


def heldout_classifier(spec: str, size: int, channels: int, holdout: float = 0.2, steps: int = 0,
                       log: Any = None) -> tuple[Classifier, dict[str, Any]]:
    """The standard classifier trained on ``1 - holdout`` of the labelled data ``spec`` (a seeded,
    per-class split), and its info: ``heldout_accuracy`` on the rest, ``class_names``, image counts.

    For labelling generated images (InterFaceGAN-style directions): the accuracy reported is that
    of the very classifier that labels them. Cached like :func:`classifier_for_data`; ``steps`` 0 means the standard recipe's DEFAULT_STEPS."""
    from ..data import load_data

    if not 0 < holdout < 1:
        raise GancvError(f"the held-out fraction must be in (0, 1), got {holdout}")
    recipe = TrainRecipe(steps=steps or DEFAULT_STEPS)
    key = {"data": spec, "size": size, "channels": channels, "recipe": recipe.__dict__, "holdout": holdout, "version": 1}
    where = cache_root() / "classifiers" / f"{_slug(spec)}-{size}px-{channels}c-heldout-{cache_key(key)}"

    def train() -> tuple[Classifier, dict[str, Any]]:
        bundle = load_data(spec, image_size=size, channels=channels)
        if bundle.kind != "image" or bundle.num_classes < 2 or bundle.x is None or bundle.y is None:
            raise GancvError(f"{spec} has no class labels (or fewer than 2 classes, or is too large to hold in memory), "
                             "so no classifier can be trained on it; pass labelled images, e.g. folder:PATH with one "
                             "sub-folder per class")
        g = torch.Generator().manual_seed(0)
        test = torch.zeros(len(bundle.y), dtype=torch.bool)
        for c in range(bundle.num_classes):
            idx = torch.nonzero(bundle.y == c).flatten()
            n_test = int(round(holdout * len(idx))) if len(idx) > 1 else 0
            test[idx[torch.randperm(len(idx), generator=g)[:n_test]]] = True
        if not test.any() or test.all():
            raise GancvError(f"{spec}: too few labelled images ({len(bundle.y)}) to hold some out for testing the classifier")
        if log:
            log(f"training the {spec} classifier at {size} px on {int((~test).sum())} images, testing on {int(test.sum())} "
                f"(once; cached in {where})")
        model = train_classifier(bundle.x[~test], bundle.y[~test], bundle.num_classes, recipe, size=size, channels=channels)
        info = {"data": spec, "num_classes": bundle.num_classes, "class_names": list(bundle.class_names),
                "train_images": int((~test).sum()), "heldout_images": int(test.sum()),
                "heldout_accuracy": round(accuracy(model, bundle.x[test], bundle.y[test]), 4), "steps": recipe.steps}
        return model, {"info": info, "key": key}

    model, meta = _cached(where, train, fits=lambda m, meta: isinstance(meta.get("info"), dict))
    return model, meta["info"]


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text)[:40].strip("-") or "data"


def class_accuracy(pred: torch.Tensor, labels: torch.Tensor, num_classes: int) -> list[float]:
    out: list[float] = []
    for c in range(num_classes):
        mask = labels == c
        out.append(float((pred[mask] == c).float().mean()) if mask.any() else float("nan"))
    return out


__all__: Sequence[str] = ["Classifier", "TrainRecipe", "train_classifier", "run_classifier", "accuracy",
                          "classifier_for_data", "heldout_classifier", "cache_root", "cache_key", "prepare"]
