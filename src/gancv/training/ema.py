"""Exponential moving average of generator weights, configured by half-life in images.

A half-life in images (StyleGAN2-ADA's ``ema_kimg``) means the same smoothing whatever the
batch size: beta = 0.5 ** (batch / (ema_kimg * 1000)). With a ramp-up (StyleGAN2-ADA's
``ema_rampup``) the half-life is at most ``rampup`` times the images seen so far, so early in
training the average forgets the random initial weights quickly instead of dragging them along.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


def ema_beta(batch_size: int, ema_kimg: float) -> float:
    return 0.5 ** (batch_size / max(ema_kimg * 1000.0, 1e-8))


class EMA:
    def __init__(self, model: nn.Module, batch_size: int, ema_kimg: float, rampup: float | None = None):
        self.batch_size, self.ema_kimg, self.rampup = batch_size, ema_kimg, rampup
        self.beta = ema_beta(batch_size, ema_kimg)
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)
        self._source: nn.Module | None = None  # the model whose tensors ``_lists`` holds
        self._lists: tuple[list[torch.Tensor], ...] = ()

    def beta_at(self, images: int) -> float:
        """The decay for the update after ``images`` training images (constant without a ramp-up)."""
        if not self.rampup:
            return self.beta
        return ema_beta(self.batch_size, min(self.ema_kimg, images * self.rampup / 1000.0))

    def _tensors(self, model: nn.Module) -> tuple[list[torch.Tensor], ...]:
        """(model params, shadow params, model buffers, shadow buffers), listed once per model: walking
        the module tree every step was ~5 % of a toy2d MLP step (the lists stay valid because
        training and checkpoint loads update tensors in place)."""
        if self._source is not model:
            self._source = model
            self._lists = (list(model.parameters()), list(self.shadow.parameters()),
                           list(model.buffers()), list(self.shadow.buffers()))
        return self._lists

    @torch.no_grad()
    def update(self, model: nn.Module, images: int = 0) -> None:
        params, shadow, buffers, shadow_buffers = self._tensors(model)
        # One fused foreach op instead of a Python loop over tensors (no host sync either).
        torch._foreach_lerp_(shadow, params, 1.0 - self.beta_at(images))
        if buffers:
            torch._foreach_copy_(shadow_buffers, buffers)  # BatchNorm statistics are tracked, not averaged
