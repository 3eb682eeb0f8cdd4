"""Spectral normalisation (Miyato et al. 2018) as a switch on discriminators.

Built on ``torch.nn.utils.parametrizations.spectral_norm`` (one power iteration per forward in
training mode, as in the paper). The power-iteration vectors ``u``/``v`` are buffers, so they
are saved and restored with the weights and a reloaded D computes exactly the same sigma.
"""
from __future__ import annotations

from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

SN_LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)


def maybe_sn(module: nn.Module, enabled: bool) -> nn.Module:
    """``module`` with its weight spectrally normalised when ``enabled``."""
    return spectral_norm(module) if enabled else module


def spectral_norm_all(net: nn.Module) -> nn.Module:
    """Spectrally normalise every conv/linear/embedding weight of ``net`` in place (after its init)."""
    for module in list(net.modules()):
        if isinstance(module, SN_LAYERS) and not hasattr(module, "parametrizations"):
            spectral_norm(module)
    return net
