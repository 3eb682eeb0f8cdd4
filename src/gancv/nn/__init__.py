"""Shared layers: spectral-norm wrappers and class-conditional BatchNorm."""
from .conditional import ConditionalBatchNorm2d
from .spectral import SN_LAYERS, maybe_sn, spectral_norm_all

__all__ = ["ConditionalBatchNorm2d", "SN_LAYERS", "maybe_sn", "spectral_norm_all"]
