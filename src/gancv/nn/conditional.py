"""Class-conditional BatchNorm (de Vries et al. 2017; the SNGAN/BigGAN generator's conditioning)."""
from __future__ import annotations

import torch
from torch import nn


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm without its own affine; per-class gain and bias from embeddings (gain starts at 1)."""

    def __init__(self, num_features: int, num_classes: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, affine=False)
        self.gain = nn.Embedding(num_classes, num_features)
        self.bias = nn.Embedding(num_classes, num_features)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.bn(x) * self.gain(labels)[:, :, None, None] + self.bias(labels)[:, :, None, None]
