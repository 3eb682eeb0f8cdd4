"""Differentiable augmentation of D's inputs: DiffAugment and its adaptive (ADA-style) variant.

DiffAugment (Zhao et al. 2020) applies the *same* random pipeline T to real and fake images
inside D, in both the D and the G step, so D only ever sees T(x) and cannot tell real from fake
by the augmentation; gradients flow through T into G. The adaptive variant (Karras et al. 2020,
ADA) applies each op per sample with probability p and tunes p from the overfitting signal
r_t = E[sign(D(real))]: p rises while r_t is above the target and falls when it is below.

Images are in [-1, 1], (N, C, H, W). Every op draws its randomness from the generator it is
given (the task's), so runs are seeded and resume exactly.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .errors import GancvError
from .registry import Registry

Tensor = torch.Tensor
Op = Callable[[Tensor, torch.Generator], Tensor]

AUGMENTS = Registry("augment")


def _rand(x: Tensor, g: torch.Generator, *shape: int) -> Tensor:
    return torch.rand(*shape, device=x.device, generator=g, dtype=x.dtype)


@AUGMENTS.register("color", description="random brightness, saturation and contrast (DiffAugment)")
def color(x: Tensor, g: torch.Generator) -> Tensor:
    n = x.shape[0]
    x = x + (_rand(x, g, n, 1, 1, 1) - 0.5)
    if x.shape[1] > 1:  # saturation only means something with colour channels
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (_rand(x, g, n, 1, 1, 1) * 2) + mean
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (_rand(x, g, n, 1, 1, 1) + 0.5) + mean


@AUGMENTS.register("translation", description="random shift by up to 1/8 of the size, zero padded (DiffAugment)")
def translation(x: Tensor, g: torch.Generator, ratio: float = 0.125) -> Tensor:
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = torch.randint(-sh, sh + 1, (n, 1, 1), device=x.device, generator=g)
    tx = torch.randint(-sw, sw + 1, (n, 1, 1), device=x.device, generator=g)
    bi, yi, xi = torch.meshgrid(torch.arange(n, device=x.device), torch.arange(h, device=x.device),
                                torch.arange(w, device=x.device), indexing="ij")
    # Gather from a 1-pixel zero-padded copy: indices that leave the image land on the padding.
    yi = (yi + ty + 1).clamp(0, h + 1)
    xi = (xi + tx + 1).clamp(0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)
    return padded[bi, yi, xi].permute(0, 3, 1, 2).contiguous()


@AUGMENTS.register("cutout", description="zero a random square of half the size (DiffAugment)")
def cutout(x: Tensor, g: torch.Generator, ratio: float = 0.5) -> Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device, generator=g)
    ox = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device, generator=g)
    yy = torch.arange(h, device=x.device)[None, :, None]
    xx = torch.arange(w, device=x.device)[None, None, :]
    # The square covers rows [oy - ch//2, oy - ch//2 + ch), clipped by the border (as in DiffAugment).
    ry, rx = yy - oy + ch // 2, xx - ox + cw // 2
    inside = (ry >= 0) & (ry < ch) & (rx >= 0) & (rx < cw)
    return x * (~inside).to(x.dtype)[:, None]


def parse_policy(policy: str) -> list[str]:
    """``"color,translation,cutout"`` -> op names, checked against the registry."""
    names = [p.strip() for p in policy.replace("+", ",").split(",") if p.strip()]
    unknown = [p for p in names if p not in AUGMENTS]
    if unknown:
        raise GancvError(f"augment={policy!r}: unknown op {unknown[0]!r}; use a comma-separated list of "
                         f"{', '.join(AUGMENTS.names())}, e.g. augment=color,translation,cutout")
    return names


def augment(x: Tensor, policy: list[str], g: torch.Generator, p: Tensor | float = 1.0) -> Tensor:
    """Apply each op of ``policy`` in order; with ``p < 1`` each op hits each sample with probability p.

    ``p`` may be a 0-dim device tensor (the adaptive case), so no host sync is needed to use it.
    """
    for name in policy:
        out = AUGMENTS.get(name)(x, g)
        if isinstance(p, float) and p >= 1.0:
            x = out
        else:
            hit = _rand(x, g, x.shape[0], 1, 1, 1) < p
            x = torch.where(hit, out, x)
    return x


class AdaptiveP:
    """ADA's probability controller, kept entirely on the device.

    Every ``interval`` D steps, p moves by ``sign(r_t - target) * batch * interval / (speed_kimg * 1000)``,
    so p can go from 0 to 1 in ``speed_kimg`` thousand real images (StyleGAN2-ADA's ``ada_kimg``).
    """

    def __init__(self, target: float, batch_size: int, device: torch.device, interval: int = 4,
                 speed_kimg: float = 100.0):
        self.target, self.interval = target, interval
        self.adjust = batch_size * interval / (speed_kimg * 1000.0)
        self.p = torch.zeros((), device=device)
        self.sign_sum = torch.zeros((), device=device)
        self.count = 0

    @torch.no_grad()
    def observe(self, real_logits: Tensor) -> None:
        self.sign_sum += real_logits.detach().sign().mean().to(self.p.dtype)
        self.count += 1
        if self.count == self.interval:
            r_t = self.sign_sum / self.count
            self.p.add_(torch.sign(r_t - self.target) * self.adjust).clamp_(0.0, 1.0)
            self.sign_sum.zero_()
            self.count = 0

    def state_dict(self) -> dict[str, Tensor | int]:
        return {"p": self.p.detach().cpu(), "sign_sum": self.sign_sum.detach().cpu(), "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.p.copy_(state["p"])
        self.sign_sum.copy_(state["sign_sum"])
        self.count = int(state["count"])


__all__ = ["AUGMENTS", "AdaptiveP", "augment", "parse_policy", "color", "translation", "cutout"]
