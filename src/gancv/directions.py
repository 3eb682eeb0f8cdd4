"""Interpretable directions in a StyleGAN's W space.

* SeFa (Shen & Zhou 2021, "Closed-Form Factorization of Latent Semantics in GANs"): every
  synthesis layer sees w only through its style affine A (s = A w + b), so the directions n
  that change styles most are the maximisers of ||A n||; they are the top eigenvectors of
  A^T A, with A the stacked affine weights. No training, no labels.
* Label directions (InterFaceGAN-style, Shen et al. 2020): for a class-conditional model,
  sample w for each class and fit a linear classifier in W; each class's unit normal points
  from the other classes towards it.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .errors import GancvError


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
