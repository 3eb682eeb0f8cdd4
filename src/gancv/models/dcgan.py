"""DCGAN (Radford et al. 2015): transposed-conv generator, strided-conv discriminator.

The networks start (G) or end (D) at a 4x4 (or 7x7) map and double per stage, so one class
covers 16, 28, 32, 64, 128 px. Following the paper: BatchNorm everywhere except G's output and
D's input layer, ReLU in G, LeakyReLU(0.2) in D, N(0, 0.02) weight init.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..nn import spectral_norm_all
from .base import ConfigModule, check_shape, register


def stages_for(size: int) -> tuple[int, int]:
    """(base map size, number of doublings) for an image size, e.g. 64 -> (4, 4), 28 -> (7, 2)."""
    for base in (4, 7):
        n, s = 0, size
        while s > base and s % 2 == 0:
            s //= 2
            n += 1
        if s == base and n >= 1:
            return base, n
    raise ValueError(f"image size {size} is not 4 or 7 times a power of two (e.g. 16, 28, 32, 64, 128)")


def dcgan_init(module: nn.Module) -> None:
    # The paper's init; without it the default Kaiming init makes early D too confident.
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class ProjectLatent(nn.ConvTranspose2d):
    """G's first layer: a transposed conv from the 1x1 latent map to the ``k x k`` base map
    (stride 1, no padding). On that input it is a plain matmul, which PyTorch's CPU kernels run
    about 3.5x faster than the transposed-conv path (13.6 -> 3.9 ms fwd+bwd at 100 -> 256x4x4,
    batch 64, one thread); the weights, their names and the result are the ConvTranspose2d's,
    so checkpoints are unchanged. On CUDA the library kernels already run it as one GEMM."""

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if x.is_cuda or output_size is not None or x.shape[-2:] != (1, 1):
            return super().forward(x, output_size)
        out = (x.flatten(1) @ self.weight.flatten(1)).view(x.shape[0], self.out_channels, *self.kernel_size)
        return out + self.bias[:, None, None] if self.bias is not None else out


def _check_extra_layers(extra_layers: int) -> None:
    if extra_layers < 0:
        raise ValueError(f"extra_layers={extra_layers}: use 0 (none) or a positive number of stride-1 conv blocks")


def _widths(width: int, n: int, cap: int = 1024) -> list[int]:
    """Channel widths from the base map outward: width * 2^(n-1), ..., width."""
    return [min(width * 2 ** (n - 1 - i), cap) for i in range(n)]


@register("generator", "dcgan", "DCGAN transposed-conv generator (16-128 px, gray or RGB)")
class DCGANGenerator(ConfigModule):
    def __init__(self, shape: Sequence[int] = (1, 32, 32), z_dim: int = 100, width: int = 64, num_classes: int = 0,
                 extra_layers: int = 0):
        super().__init__()
        c, h, w = shape
        if h != w:
            raise ValueError(f"DCGAN needs square images, got {h}x{w}")
        _check_extra_layers(extra_layers)
        self.shape, self.z_dim, self.num_classes = (c, h, w), z_dim, num_classes
        base, n = stages_for(h)
        widths = _widths(width, n)
        self.embed = nn.Embedding(num_classes, num_classes) if num_classes else None
        layers: list[nn.Module] = [
            ProjectLatent(z_dim + num_classes, widths[0], base, 1, 0, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(True),
        ]
        for cin, cout in zip(widths[:-1], widths[1:]):
            layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]
        # dcgan.torch's n_extra_layers: depth without another doubling (at 8 px G has one hidden layer).
        for _ in range(extra_layers):
            layers += [nn.Conv2d(widths[-1], widths[-1], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[-1]), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(widths[-1], c, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        check_shape("DCGANGenerator input z", z, (None, self.z_dim))
        if self.embed is not None:
            if labels is None:
                raise ValueError("this generator is class-conditional: pass labels")
            z = torch.cat([z, self.embed(labels)], dim=1)
        return self.net(z[:, :, None, None])


@register("discriminator", "dcgan", "DCGAN strided-conv discriminator (16-128 px, gray or RGB)")
class DCGANDiscriminator(ConfigModule):
    # Each logit depends on its own sample only (gancv.tasks.generation.per_sample).
    per_sample = True

    def __init__(self, shape: Sequence[int] = (1, 32, 32), width: int = 64, num_classes: int = 0,
                 spectral_norm: bool = False, extra_layers: int = 0):
        super().__init__()
        c, h, w = shape
        if h != w:
            raise ValueError(f"DCGAN needs square images, got {h}x{w}")
        _check_extra_layers(extra_layers)
        self.shape, self.num_classes = (c, h, w), num_classes
        base, n = stages_for(h)
        widths = list(reversed(_widths(width, n)))
        # Conditioning by extra constant label planes on the input (the simple cGAN recipe).
        self.embed = nn.Embedding(num_classes, num_classes) if num_classes else None
        layers: list[nn.Module] = [nn.Conv2d(c + num_classes, widths[0], 4, 2, 1), nn.LeakyReLU(0.2, True)]

        def block(cin: int, cout: int, *conv: int) -> list[nn.Module]:
            # SN-DCGAN (Miyato et al.) drops D's BatchNorm: spectral norm is the normaliser there.
            norm: list[nn.Module] = [] if spectral_norm else [nn.BatchNorm2d(cout)]
            return [nn.Conv2d(cin, cout, *conv, bias=spectral_norm), *norm, nn.LeakyReLU(0.2, True)]

        for _ in range(extra_layers):  # dcgan.torch's n_extra_layers, at the first conv's resolution
            layers += block(widths[0], widths[0], 3, 1, 1)
        for cin, cout in zip(widths[:-1], widths[1:]):
            layers += block(cin, cout, 4, 2, 1)
        layers.append(nn.Conv2d(widths[-1], 1, base, 1, 0))
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)
        if spectral_norm:
            spectral_norm_all(self)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        check_shape("DCGANDiscriminator input", x, (None, *self.shape))
        if self.embed is not None:
            if labels is None:
                raise ValueError("this discriminator is class-conditional: pass labels")
            planes = self.embed(labels)[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
            x = torch.cat([x, planes], dim=1)
        return self.net(x).flatten()
