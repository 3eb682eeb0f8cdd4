"""Interpretable directions in a StyleGAN's W space.

* SeFa (Shen & Zhou 2021, "Closed-Form Factorization of Latent Semantics in GANs"): every
  synthesis layer sees w only through its style affine A (s = A w + b), so the directions n
  that change styles most are the maximisers of ||A n||; they are the top eigenvectors of
  A^T A, with A the stacked affine weights. No training, no labels.
* Label directions (InterFaceGAN-style, Shen et al. 2020): for a class-conditional model,
  sample w for each class and fit a linear classifier in W; each class's unit normal points
  from the other classes towards it.
* Label directions for an unconditional model trained on labelled data (InterFaceGAN's own
  recipe): sample w, generate, label the images with a classifier trained on the real labelled
  data, keep the confidently labelled ones, and fit one linear boundary per class (that class
  against the rest) in W; its unit normal is the class's direction. The boundary's accuracy on
  a held-out 30 % of those samples says how linear the attribute is in W.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .errors import GancvError

MIN_PER_SIDE = 4  # confident samples needed on each side of a boundary to fit and test it


@dataclass
class LabelDirections:
    """Unit directions in W (k, w_dim) for the classes in ``classes`` and how they were found."""

    directions: torch.Tensor
    classes: list[int]
    class_names: list[str]
    boundary_accuracy: torch.Tensor  # (k,) balanced accuracy of each class-vs-rest boundary in W
    source: str  # "conditional mapping" or "classifier on DATA"
    classifier_accuracy: float | None = None  # the labelling classifier's held-out accuracy on real data
    sampled: int = 0  # generated samples labelled by the classifier
    counts: list[int] = field(default_factory=list)  # confident samples per class (all classes)
    skipped: list[int] = field(default_factory=list)  # classes with too few confident samples for a boundary

    def summary(self) -> dict[str, Any]:
        return {"source": self.source, "classes": self.classes,
                "class_names": self.class_names,
                "boundary_accuracy": [round(float(a), 4) for a in self.boundary_accuracy],
                "classifier_heldout_accuracy": self.classifier_accuracy, "sampled": self.sampled,
                "confident_per_class": self.counts, "skipped_classes": self.skipped}


def sefa(G: nn.Module, layers: slice | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthonormal directions (k, w_dim), strongest first, and their eigenvalues."""
    affines = getattr(G, "modulation_layers", lambda: [])()
    if not affines:
        raise GancvError(f"latent directions need modulation layers (a StyleGAN generator); "
                         f"{type(G).__name__} has none")
    chosen = affines[layers or slice(None)]
    # Effective weights (equalised-lr scale included), each row normalised as in the paper so
    # that wide layers do not dominate the factorisation.
    weight = torch.cat([(a.weight * a.scale).detach().float() for a in chosen])
    weight = weight / weight.norm(dim=1, keepdim=True).clamp_min(1e-12)
    eigvals, eigvecs = torch.linalg.eigh(weight.t() @ weight)  # ascending
    order = torch.argsort(eigvals, descending=True)
    return eigvecs[:, order].t().contiguous(), eigvals[order]


def label_directions(model: Any, samples_per_class: int = 500, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """One unit direction per class (num_classes, w_dim) and the classifier's training accuracy per class."""
    from sklearn.linear_model import LogisticRegression

    ws, ys = [], []
    for c in range(model.num_classes):
        ws.append(model.ws(samples_per_class, labels=c, seed=seed + c)[:, 0].cpu())
        ys.append(torch.full((samples_per_class,), c))
    x, y = torch.cat(ws).numpy(), torch.cat(ys).numpy()
    clf = LogisticRegression(max_iter=1000).fit(x, y)
    coef = torch.as_tensor(clf.coef_, dtype=torch.float32)
    if coef.shape[0] == 1:  # binary: sklearn keeps one normal, pointing towards class 1
        coef = torch.cat([-coef, coef])
    pred = clf.predict(x)
    acc = torch.tensor([float((pred[y == c] == c).mean()) for c in range(model.num_classes)])
    return coef / coef.norm(dim=1, keepdim=True), acc


def check_sampling(samples: int, confidence: float) -> None:
    """Raise before any work is done when the sampling settings cannot give a boundary."""
    if not 0 < confidence < 1:
        raise GancvError(f"--confidence must be in (0, 1) (a class probability), got {confidence}")
    if samples < 2 * MIN_PER_SIDE:
        raise GancvError(f"label directions need --samples >= {2 * MIN_PER_SIDE}, got {samples}")


def classifier_directions(model: Any, classifier: Any, class_names: list[str], samples: int = 2000,
                          confidence: float = 0.9, seed: int = 0, batch_size: int = 256) -> LabelDirections:
    """InterFaceGAN on an unconditional model: classify generated images, fit class-vs-rest boundaries in W.

    ``classifier``: a :class:`gancv.metrics.classifier.Classifier` trained on the real labelled data."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from .metrics.classifier import run_classifier

    check_sampling(samples, confidence)
    ws_all, probs = [], []
    for i in range(0, samples, batch_size):
        n = min(batch_size, samples - i)
        ws = model.ws(n, seed=seed + i)  # one seed per batch: the same call gives the same samples
        _, logits = run_classifier(classifier, model.synthesize(ws))
        ws_all.append(ws[:, 0].cpu())
        probs.append(logits.softmax(1))
    w, prob = torch.cat(ws_all), torch.cat(probs)
    conf, pred = prob.max(1)
    keep = conf >= confidence
    w, pred = w[keep].numpy(), pred[keep].numpy()
    k = classifier.num_classes
    counts = [int((pred == c).sum()) for c in range(k)]
    # One seeded 70/30 split of the confident samples (InterFaceGAN's split ratio) for every boundary.
    order = np.random.default_rng(seed).permutation(len(pred))
    fit, test = order[: int(0.7 * len(order))], order[int(0.7 * len(order)):]
    dirs, accs, classes, skipped = [], [], [], []
    for c in range(k):
        y = pred == c
        if min(y[fit].sum(), (~y[fit]).sum(), y[test].sum(), (~y[test]).sum()) < 1 or \
                min(y.sum(), (~y).sum()) < MIN_PER_SIDE:
            skipped.append(c)
            continue
        clf = LogisticRegression(max_iter=2000, class_weight="balanced").fit(w[fit], y[fit])
        guess = clf.predict(w[test])
        accs.append(0.5 * (float((guess[y[test]]).mean()) + float((~guess[~y[test]]).mean())))
        normal = torch.as_tensor(clf.coef_[0], dtype=torch.float32)
        dirs.append(normal / normal.norm().clamp_min(1e-12))
        classes.append(c)
    if not dirs:
        raise GancvError(f"no class had {MIN_PER_SIDE}+ confidently labelled samples on both sides of a boundary "
                         f"(confident per class: {counts} of {samples}); raise --samples or lower --confidence")
    return LabelDirections(torch.stack(dirs), classes, [class_names[c] if c < len(class_names) else str(c) for c in classes],
                           torch.tensor(accs), "", None, samples, counts, skipped)


@torch.no_grad()
def edit_success(model: Any, classifier: Any, found: LabelDirections, strength: float, samples: int = 500,
                 seed: int = 1_000_000) -> dict[str, Any]:
    """Does each direction do what it claims? On fresh samples (seeds the directions were not fitted
    on), the share the classifier labels as the direction's class after moving ``strength`` along it,
    against the same samples unedited and moved as far along a random unit direction (one per class)."""
    from .metrics.classifier import run_classifier

    ws = model.ws(samples, seed=seed)

    def labels(latents: torch.Tensor) -> torch.Tensor:
        return run_classifier(classifier, model.synthesize(latents))[1].argmax(1)

    unedited = labels(ws)
    g = torch.Generator().manual_seed(seed)
    rows: dict[str, list[float]] = {"edited": [], "random_direction": [], "unedited": []}
    for direction, c in zip(found.directions, found.classes):
        other = torch.randn(direction.shape, generator=g)
        rows["edited"].append(float((labels(model.edit(ws, direction, strength)) == c).float().mean()))
        rows["random_direction"].append(float((labels(model.edit(ws, other / other.norm(), strength)) == c).float().mean()))
        rows["unedited"].append(float((unedited == c).float().mean()))
    return {"strength": strength, "samples": samples,
            "mean": {k: round(sum(v) / len(v), 4) for k, v in rows.items()},
            "per_class": {k: [round(x, 3) for x in v] for k, v in rows.items()}}
