"""SNGAN-style ResNet generator and discriminator (Miyato et al. 2018; Miyato & Koyama 2018).

G: z -> linear to a 4x4 (or 7x7) map -> residual up-blocks (BN-ReLU-up-conv-BN-ReLU-conv, 1x1
shortcut) -> BN-ReLU-conv3x3-tanh. Class-conditional G uses conditional BatchNorm.
D: an "optimised" first block, residual down-blocks, ReLU, global *sum* pooling, linear; spectral
norm on every layer (on by default). Conditional D: a projection term <embed(y), h> (projection
discriminator), or with ``conditioning="acgan"`` an auxiliary class head instead (ACGAN).

Up to 32 px the channel width is constant, as in the CIFAR-10 nets (G 256, D 128 channels) and
D keeps an 8x8 map for its last two blocks; from 64 px channels halve per G stage from ``width``
and double per D stage from ``width``, as in the 64 px nets (G width=1024 -> 64, D width=64 -> 1024).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import ConditionalBatchNorm2d, spectral_norm_all
from .base import ConfigModule, check_shape, register
from .dcgan import stages_for


def _xavier(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.xavier_uniform_(module.weight, gain=1.0 if module.weight.shape[-1] == 1 else 2 ** 0.5)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class _Norm(nn.Module):
    """BatchNorm, or class-conditional BatchNorm when the generator has classes."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.norm = ConditionalBatchNorm2d(channels, num_classes) if num_classes else nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return self.norm(x, labels) if isinstance(self.norm, ConditionalBatchNorm2d) else self.norm(x)


class GBlock(nn.Module):
    def __init__(self, cin: int, cout: int, num_classes: int):
        super().__init__()
        self.n1, self.n2 = _Norm(cin, num_classes), _Norm(cout, num_classes)
        self.c1, self.c2 = nn.Conv2d(cin, cout, 3, 1, 1), nn.Conv2d(cout, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        h = F.interpolate(F.relu(self.n1(x, labels)), scale_factor=2)
        h = self.c2(F.relu(self.n2(self.c1(h), labels)))
        return h + self.skip(F.interpolate(x, scale_factor=2))


@register("generator", "resnet", "SNGAN ResNet generator (16-128 px; conditional BatchNorm when conditional)")
class ResNetGenerator(ConfigModule):
    def __init__(self, shape: Sequence[int] = (3, 32, 32), z_dim: int = 128, width: int = 256, num_classes: int = 0):
        super().__init__()
        c, h, w = shape
        if h != w:
            raise ValueError(f"the ResNet generator needs square images, got {h}x{w}")
        self.shape, self.z_dim, self.num_classes = (c, h, w), z_dim, num_classes
        self.base, n = stages_for(h)
        # ``width`` is the channel count at the base map; from 64 px it halves per up-block.
        widths = [width] * (n + 1) if h <= 32 else [max(width // 2**i, 1) for i in range(n + 1)]
        self.linear = nn.Linear(z_dim, widths[0] * self.base * self.base)
        self.blocks = nn.ModuleList(GBlock(a, b, num_classes) for a, b in zip(widths[:-1], widths[1:]))
        self.out_norm = nn.BatchNorm2d(widths[-1])
        self.out = nn.Conv2d(widths[-1], c, 3, 1, 1)
        self.apply(_xavier)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        check_shape("ResNetGenerator input z", z, (None, self.z_dim))
        if self.num_classes and labels is None:
            raise ValueError("this generator is class-conditional: pass labels")
        h = self.linear(z).view(z.shape[0], -1, self.base, self.base)
        for block in self.blocks:
            h = block(h, labels if self.num_classes else None)
        return torch.tanh(self.out(F.relu(self.out_norm(h))))


class DBlock(nn.Module):
    """Pre-activation residual block; ``first``: the optimised input block (no ReLU on the image)."""

    def __init__(self, cin: int, cout: int, down: bool, first: bool = False):
        super().__init__()
        self.down, self.first = down, first
        self.c1, self.c2 = nn.Conv2d(cin, cout, 3, 1, 1), nn.Conv2d(cout, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1) if (cin != cout or down) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)
        h = self.c2(F.relu(self.c1(h)))
        if self.down:
            h = F.avg_pool2d(h, 2)
        s = x
        if self.skip is not None:
            # The optimised block pools before its 1x1 conv; the others convolve first.
            s = self.skip(F.avg_pool2d(s, 2)) if (self.first and self.down) else self.skip(s)
            if self.down and not self.first:
                s = F.avg_pool2d(s, 2)
        return h + s


@register("discriminator", "resnet", "SNGAN ResNet discriminator, spectral norm; projection or ACGAN conditioning")
class ResNetDiscriminator(ConfigModule):
    # Each logit depends on its own sample only (gancv.tasks.generation.per_sample).
    per_sample = True

    def __init__(self, shape: Sequence[int] = (3, 32, 32), width: int = 128, num_classes: int = 0,
                 spectral_norm: bool = True, conditioning: str = "projection"):
        super().__init__()
        c, h, w = shape
        if h != w:
            raise ValueError(f"the ResNet discriminator needs square images, got {h}x{w}")
        if conditioning not in ("projection", "acgan"):
            raise ValueError(f"conditioning must be 'projection' or 'acgan', got {conditioning!r}")
        self.shape, self.num_classes = (c, h, w), num_classes
        _, n = stages_for(h)
        if h <= 32:  # CIFAR layout: constant width, stop downsampling at 8x8 (n - 1 downs), two more blocks
            plan = [(width, width, i < n - 1) for i in range(n - 1)] + [(width, width, False)] * 2
        else:  # 64 px layout: widths double per down-block, then one block at the final width
            widths = [width * 2 ** i for i in range(n + 1)]
            plan = [(widths[i], widths[i + 1], True) for i in range(n - 1)] + [(widths[n - 1], widths[n], False)]
            plan = [(width, width, True)] + plan
        blocks = [DBlock(c, plan[0][1], plan[0][2], first=True)]
        blocks += [DBlock(a, b, d) for a, b, d in plan[1:]]
        self.blocks = nn.Sequential(*blocks)
        feat = plan[-1][1]
        self.linear = nn.Linear(feat, 1)
        self.aux_classifier = bool(num_classes) and conditioning == "acgan"
        self.embed = nn.Embedding(num_classes, feat) if num_classes and not self.aux_classifier else None
        self.classifier = nn.Linear(feat, num_classes) if self.aux_classifier else None
        self.apply(_xavier)
        if self.embed is not None:
            nn.init.xavier_uniform_(self.embed.weight)
        if spectral_norm:
            spectral_norm_all(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        check_shape("ResNetDiscriminator input", x, (None, *self.shape))
        return F.relu(self.blocks(x)).sum(dim=(2, 3))  # sum pooling, as in SNGAN

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x)
        out = self.linear(h).squeeze(1)
        if self.embed is not None:
            if labels is None:
                raise ValueError("this discriminator is class-conditional (projection): pass labels")
            out = out + (self.embed(labels) * h).sum(1)  # projection: <embed(y), phi(x)>
        return out

    def forward_with_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ACGAN: (real/fake logits, class logits) from one pass."""
        if self.classifier is None:
            raise ValueError("forward_with_aux needs conditioning='acgan' and classes")
        h = self.features(x)
        return self.linear(h).squeeze(1), self.classifier(h)


__all__ = ["ResNetGenerator", "ResNetDiscriminator", "GBlock", "DBlock"]
