"""GAN objectives as pure functions of discriminator logits (no hidden state).

Each registered loss is a pair ``(d_loss(real_logits, fake_logits), g_loss(fake_logits))``.
Logits, never probabilities: ``binary_cross_entropy_with_logits`` is numerically safe and
autocast-safe where ``sigmoid`` + ``BCELoss`` is neither.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .registry import Registry

Tensor = torch.Tensor


@dataclass(frozen=True)
class GANLoss:
    name: str
    d_loss: Callable[[Tensor, Tensor], Tensor]
    g_loss: Callable[[Tensor], Tensor]


LOSSES = Registry("loss")


def register_loss(name: str, description: str):
    def add(pair: tuple[Callable, Callable]) -> GANLoss:
        loss = GANLoss(name, *pair)
        LOSSES.register(name, loss, description=description)
        return loss

    return add


def bce_d(real: Tensor, fake: Tensor) -> Tensor:
    # -log D(x) - log(1 - D(G(z))): the discriminator side of the min-max value V(D, G).
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def bce_g(fake: Tensor) -> Tensor:
    # Non-saturating: maximise log D(G(z)) instead of minimising log(1 - D(G(z))),
    # which gives G strong gradients early when D rejects its samples easily.
    return F.softplus(-fake).mean()


def lsgan_d(real: Tensor, fake: Tensor) -> Tensor:
    return 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake**2).mean()


def lsgan_g(fake: Tensor) -> Tensor:
    return 0.5 * ((fake - 1) ** 2).mean()


def hinge_d(real: Tensor, fake: Tensor) -> Tensor:
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def hinge_g(fake: Tensor) -> Tensor:
    return -fake.mean()


def wasserstein_d(real: Tensor, fake: Tensor) -> Tensor:
    return fake.mean() - real.mean()


def wasserstein_g(fake: Tensor) -> Tensor:
    return -fake.mean()


register_loss("bce", "non-saturating binary cross-entropy (Goodfellow et al.)")((bce_d, bce_g))
register_loss("lsgan", "least squares (Mao et al.)")((lsgan_d, lsgan_g))
register_loss("hinge", "hinge loss (Lim & Ye; SNGAN, BigGAN)")((hinge_d, hinge_g))
register_loss("wasserstein", "Wasserstein critic loss (Arjovsky et al.); pair with a gradient penalty")(
    (wasserstein_d, wasserstein_g)
)


# ---- gradient penalties (pure functions of D, inputs and labels) --------------------------------
def r1_penalty(D: Callable[..., Tensor], real: Tensor, labels: Tensor | None = None) -> Tensor:
    """R1 (Mescheder et al. 2018): E ||grad_x D(x)||^2 on real data; multiply by gamma/2 outside."""
    real = real.detach().requires_grad_(True)
    logits = D(real, labels)
    (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    return grad.square().flatten(1).sum(1).mean()


def gradient_penalty(D: Callable[..., Tensor], real: Tensor, fake: Tensor, labels: Tensor | None = None,
                     generator: torch.Generator | None = None) -> Tensor:
    """WGAN-GP (Gulrajani et al. 2017): E (||grad D(x_hat)|| - 1)^2 on random interpolates."""
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    alpha = torch.rand(shape, device=real.device, generator=generator)
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x_hat, labels).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1).square().mean()
