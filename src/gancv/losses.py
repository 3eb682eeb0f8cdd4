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


def lecam_penalty(real: Tensor, fake: Tensor, anchor_real: Tensor, anchor_fake: Tensor) -> Tensor:
    """LeCam (Tseng et al. 2021): pull D(real) towards the EMA of D(fake) and D(fake) towards the EMA of
    D(real), only where they overshoot; bounds D's outputs on limited data. The anchors are the
    caller's state (the task keeps them), so this stays a pure function."""
    return F.relu(real - anchor_fake).square().mean() + F.relu(anchor_real - fake).square().mean()


def acgan_class_loss(class_logits: Tensor, labels: Tensor) -> Tensor:
    """ACGAN (Odena et al. 2017): cross-entropy of D's auxiliary classifier on the true class."""
    return F.cross_entropy(class_logits, labels)


def mode_seeking_loss(fake_a: Tensor, fake_b: Tensor, z_a: Tensor, z_b: Tensor, eps: float = 1e-5) -> Tensor:
    """MSGAN (Mao et al. 2019): the inverse of the ratio mean|G(z_a) - G(z_b)| / mean|z_a - z_b| over
    pairs with the same condition. Minimising it pushes distinct latents to distinct images, against
    a conditional G that maps all of z onto the few training images of a class."""
    ratio = (fake_a - fake_b).abs().mean() / (z_a - z_b).abs().mean()
    return 1.0 / (ratio + eps)


def palette_l1(fake: Tensor, real: Tensor) -> Tensor:
    """Mean L1 from each value of ``fake`` (N, C, H, W) to the nearest value the same channel takes in
    ``real`` (unpaired: any batch of the target domain). About 0 for a domain whose values are
    continuous (photos); a pull onto the palette of a domain with few values (posterised cartoons).
    The sorted values keep their repeats: ``unique`` would give the same nearest values but its
    length is data-dependent, a host sync in the G step."""
    if fake.dim() != 4 or real.dim() != 4 or fake.shape[1] != real.shape[1]:
        raise ValueError(f"palette_l1 needs (N, C, H, W) batches with the same C, "
                         f"got {tuple(fake.shape)} and {tuple(real.shape)}")
    dists = []
    for f, r in zip(fake.transpose(0, 1), real.detach().transpose(0, 1)):
        values = r.flatten().sort().values
        hi = torch.searchsorted(values, f.contiguous()).clamp(max=len(values) - 1)
        lo = (hi - 1).clamp(min=0)
        dists.append(torch.minimum((f - values[lo]).abs(), (f - values[hi]).abs()))
    return torch.stack(dists).mean()


@dataclass(frozen=True)
class Regularizer:
    name: str
    fn: Callable[..., Tensor]
    config_key: str  # the TrainConfig weight that switches it on


REGULARIZERS = Registry("regularizer")
REGULARIZERS.register("gradient-penalty", Regularizer("gradient-penalty", gradient_penalty, "gp_weight"),
                      description="WGAN-GP two-sided penalty on interpolates (gp_weight, with loss=wasserstein)")
REGULARIZERS.register("r1", Regularizer("r1", r1_penalty, "r1_gamma"),
                      description="R1 on real data, lazily every r1_every steps (r1_gamma)")
REGULARIZERS.register("lecam", Regularizer("lecam", lecam_penalty, "lecam_weight"),
                      description="LeCam: D outputs anchored to EMAs of the other side's outputs (lecam_weight)")

# Losses whose critic is only meaningful under a gradient penalty, and the ones that pair with it.
GP_LOSSES = ("wasserstein",)


# ---- relativistic average GAN (Jolicoeur-Martineau 2018; ESRGAN) --------------------------------
# D estimates whether real data is *more realistic than the average fake* (and vice versa), so
# G's loss depends on real logits too: a different signature from the registered pairs above.
def ragan_d(real: Tensor, fake: Tensor) -> Tensor:
    return 0.5 * (F.softplus(-(real - fake.mean())).mean() + F.softplus(fake - real.mean()).mean())


def ragan_g(real: Tensor, fake: Tensor) -> Tensor:
    return 0.5 * (F.softplus(real - fake.mean()).mean() + F.softplus(-(fake - real.mean())).mean())


def adversarial_pair(name: str) -> tuple[Callable[[Tensor, Tensor], Tensor], Callable[[Tensor, Tensor], Tensor]]:
    """``(d_loss(real, fake), g_loss(real, fake))`` for "ragan" or any registered loss name."""
    if name == "ragan":
        return ragan_d, ragan_g
    loss = LOSSES.get(name)
    return loss.d_loss, lambda real, fake: loss.g_loss(fake)
