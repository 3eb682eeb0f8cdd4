"""The classic fully connected GAN (Goodfellow et al. 2014, in PyTorch-GAN's form).

G: z -> 256 -> 512 -> 1024 -> prod(shape), LeakyReLU(0.2) + BatchNorm, Tanh.
D: prod(shape) -> 512 -> 256 -> 1 logit, LeakyReLU(0.2), Dropout(0.3).
With ``shape=(2,)`` the same networks model 2-D points (the toy2d benchmarks); there the output
is linear, since points are not bounded to [-1, 1].
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from ..nn import spectral_norm_all
from .base import ConfigModule, check_shape, register


# ReLU lets G map whole regions of z onto (nearly) one point, which tight mixture modes need:
# a LeakyReLU network never has zero slope, so its modes stay smeared along the leak.
_ACTIVATIONS = {"leaky_relu": lambda: nn.LeakyReLU(0.2), "relu": nn.ReLU}


def _is_image(shape: Sequence[int]) -> bool:
    return len(shape) == 3


def _check_scale(scale: float, shape: Sequence[int]) -> None:
    if not scale > 0:
        raise ValueError(f"scale must be > 0 (the data's spread, e.g. 2.83 for toy2d:grid), got {scale}")
    if scale != 1.0 and _is_image(shape):
        raise ValueError(f"scale={scale} is for 2-D points; images are already in [-1, 1]: use scale=1")


@register("generator", "mlp", "classic fully connected generator (z -> 256 -> 512 -> 1024 -> image)")
class MLPGenerator(ConfigModule):
    """``latent_codes=K > 0`` reads z's first coordinate as a uniform categorical code of K values
    (its normal quantile, so z stays an ordinary Gaussian for sampling, truncation and
    interpolation), which adds a learned per-code offset to the first hidden layer. A continuous G
    of a connected latent cannot put all its mass on disconnected modes: it leaves "bridges"
    between them, however sharp it becomes (Khayatkhoei et al. 2018). With the code, the image of
    each of the K latent pieces is free to land on one mode (DeLiGAN-/InfoGAN-style discrete
    latent); K well above the mode count lets D's feedback balance them without knowing the modes.

    ``scale`` (points only) multiplies G's output, and the matching ``MLPDiscriminator(scale=...)``
    divides D's input by it: the networks then work on data of about unit spread. Without it a
    freshly initialised G emits points within ~1 of the origin, and on toy2d:grid (modes out to
    +-4, spread 2.83) Adam's bounded steps spend thousands of updates just growing the output
    weights, which left the mode masses uneven at 8k steps (reverse KL 0.24 vs 0.015 scaled).
    """

    def __init__(self, shape: Sequence[int] = (1, 28, 28), z_dim: int = 100,
                 hidden: Sequence[int] = (256, 512, 1024), batchnorm: bool = True, num_classes: int = 0,
                 activation: str = "leaky_relu", latent_codes: int = 0, scale: float = 1.0):
        super().__init__()
        _check_scale(scale, shape)
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation {activation!r} is not one of {', '.join(_ACTIVATIONS)}")
        if latent_codes < 0 or (latent_codes and z_dim < 2) or (latent_codes and not hidden):
            raise ValueError(f"latent_codes={latent_codes} needs z_dim >= 2 and a hidden layer (the code takes z's "
                             "first coordinate); use latent_codes=0 to switch it off")
        self.shape, self.z_dim, self.num_classes, self.latent_codes = tuple(shape), z_dim, num_classes, latent_codes
        self.scale = float(scale)
        # Class conditioning by concatenating a learned embedding to z (Mirza & Osindero).
        self.embed = nn.Embedding(num_classes, num_classes) if num_classes else None
        self.codes = nn.Embedding(latent_codes, hidden[0]) if latent_codes else None
        layers: list[nn.Module] = []
        width = z_dim - (1 if latent_codes else 0) + num_classes
        for i, h in enumerate(hidden):
            layers.append(nn.Linear(width, h))
            # No BatchNorm on the first layer, as in the reference implementation.
            if batchnorm and i > 0:
                layers.append(nn.BatchNorm1d(h))
            layers.append(_ACTIVATIONS[activation]())
            width = h
        layers.append(nn.Linear(width, math.prod(self.shape)))
        if _is_image(self.shape):
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        check_shape("MLPGenerator input z", z, (None, self.z_dim))
        n = z.shape[0]
        code = None
        if self.codes is not None:
            # Phi(z_0) is uniform on (0, 1): K equally likely codes.
            u = 0.5 * (1.0 + torch.erf(z[:, 0] / math.sqrt(2.0)))
            code = (u * self.latent_codes).long().clamp_(0, self.latent_codes - 1)
            z = z[:, 1:]
        if self.embed is not None:
            if labels is None:
                raise ValueError("this generator is class-conditional: pass labels")
            z = torch.cat([z, self.embed(labels)], dim=1)
        if code is None:
            out = self.net(z)
        else:
            out = self.net[1:](self.net[0](z) + self.codes(code))
        return (out * self.scale if self.scale != 1.0 else out).view(n, *self.shape)


@register("discriminator", "mlp", "classic fully connected discriminator (image -> 512 -> 256 -> 1)")
class MLPDiscriminator(ConfigModule):
    # Each logit depends on its own sample only (gancv.tasks.generation.per_sample).
    per_sample = True

    def __init__(self, shape: Sequence[int] = (1, 28, 28), hidden: Sequence[int] = (512, 256),
                 dropout: float = 0.3, num_classes: int = 0, spectral_norm: bool = False, scale: float = 1.0):
        super().__init__()
        _check_scale(scale, shape)
        self.scale = float(scale)
        self.shape, self.num_classes = tuple(shape), num_classes
        self.embed = nn.Embedding(num_classes, num_classes) if num_classes else None
        layers: list[nn.Module] = []
        width = math.prod(self.shape) + num_classes
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(0.2)]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)
        if spectral_norm:
            spectral_norm_all(self)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        check_shape("MLPDiscriminator input", x, (None, *self.shape))
        h = x.flatten(1)
        if self.scale != 1.0:
            h = h / self.scale
        if self.embed is not None:
            if labels is None:
                raise ValueError("this discriminator is class-conditional: pass labels")
            h = torch.cat([h, self.embed(labels)], dim=1)
        return self.net(h).squeeze(1)
