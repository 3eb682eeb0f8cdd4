"""Restoration networks: super-resolution generators, a gated-convolution inpainting network and
spectral-norm PatchGAN discriminators.

Every network here is fully convolutional, so it runs on any image size (tiled for big images)
and its class attribute ``family`` says which task uses it ("super-resolution", "inpainting").

* :class:`SRResNet` (Ledig et al. 2017) with EDSR's changes (no BatchNorm: BN statistics of small
  training crops shift at test time on whole images and cause colour casts; a 3x3 head);
* :class:`RRDBNet` (Wang et al. 2018, ESRGAN): residual-in-residual dense blocks, residual scaling 0.2;
* :class:`GatedInpaintNet` (Yu et al. 2019, DeepFill v2): gated convolutions learn a soft,
  per-pixel validity mask at every layer, so free-form holes need no hand-written mask update;
  with ``prefill`` it refines a classical fill of the hole (``gancv.nn.fill``) instead;
* :class:`PatchDiscriminator`: SN-PatchGAN (Miyato et al. 2018; Yu et al. 2019), one logit per patch;
* :class:`GlobalLocalDiscriminator`: a global PatchGAN on the whole image plus a local one on a
  crop around the hole (Iizuka et al. 2017).

Both SR generators learn a residual on top of the bicubic upscale of their input: the network
only has to add the missing high frequencies, which is what makes short CPU trainings useful.
Their ``padding`` ("zeros", "reflect", "replicate") is how every 3x3 conv sees past the image
edge: zeros show the network a false dark border on every layer, which matters on small inputs
where most pixels lie within the receptive field of an edge.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from ..errors import GancvError
from ..nn.fill import PREFILLS, prefill
from .base import ConfigModule, check_shape, register

SR = "super-resolution"
INPAINT = "inpainting"


def _check_scale(scale: int) -> int:
    if scale not in (2, 4, 8):
        raise ValueError(f"scale must be 2, 4 or 8 (pixel-shuffle doublings), got {scale}")
    return int(math.log2(scale))


UPSAMPLERS = ("progressive", "direct")
PADDINGS = ("zeros", "reflect", "replicate")


def _check_padding(padding: str) -> str:
    if padding not in PADDINGS:
        raise GancvError(f"generator.padding={padding!r}: choose one of {', '.join(PADDINGS)}")
    return padding


def _conv(cin: int, cout: int, padding: str) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, 1, 1, padding_mode=padding)


def _upsampler(width: int, scale: int, mode: str, padding: str = "zeros") -> tuple[nn.Sequential, int]:
    """(upsampling layers, their output width).

    "progressive" (SRResNet/ESRGAN): conv + PixelShuffle(2) per doubling (Shi et al. 2016): no
    checkerboard artefacts of transposed convs. "direct" (ESPCN): one conv at the low resolution
    straight to ``scale**2`` sub-pixel planes; far cheaper on CPU, because the progressive
    variant runs wide convs at 2x and 4x the input resolution.
    """
    doublings = _check_scale(scale)
    if mode == "direct":
        out = max(8, width // 2)
        return nn.Sequential(_conv(width, out * scale * scale, padding), nn.PixelShuffle(scale), nn.LeakyReLU(0.2, True)), out
    if mode != "progressive":
        raise ValueError(f"upsample must be one of {', '.join(UPSAMPLERS)}, got {mode!r}")
    layers: list[nn.Module] = []
    for _ in range(doublings):
        layers += [_conv(width, 4 * width, padding), nn.PixelShuffle(2), nn.LeakyReLU(0.2, True)]
    return nn.Sequential(*layers), width


def _icnr(upsampler: nn.Module, scale: int) -> None:
    """ICNR init (Aitken et al. 2017) of the convs feeding a PixelShuffle: every sub-pixel position
    starts with the same filter, so the layer starts as conv + nearest-neighbour upsampling. why:
    a random init gives each of the scale**2 positions its own filter, a checkerboard the short
    training must first unlearn (the flip/rotation ensemble averages it away, a single pass keeps it)."""
    mods = list(upsampler)
    for conv, shuffle in zip(mods, mods[1:]):
        if isinstance(conv, nn.Conv2d) and isinstance(shuffle, nn.PixelShuffle):
            r2 = shuffle.upscale_factor**2
            sub = nn.Conv2d(conv.in_channels, conv.out_channels // r2, 3)  # default init, at the low-res width
            with torch.no_grad():
                conv.weight.copy_(sub.weight.repeat_interleave(r2, dim=0))  # channel c*r2 + k -> position k of c
                conv.bias.copy_(sub.bias.repeat_interleave(r2))


def _bicubic(x: torch.Tensor, scale: int) -> torch.Tensor:
    return F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)


class _SRBase(ConfigModule):
    family = SR
    channels: int
    scale: int

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_shape(f"{type(self).__name__} input", x, (None, self.channels, None, None))
        feat = self.head(x)
        feat = feat + self.body(feat)
        return _bicubic(x, self.scale) + self.tail(self.up(feat))


class _ChannelAttention(nn.Module):
    """RCAN's channel attention (Zhang et al. 2018): rescale each channel by a gate computed from
    the image-wide mean of all channels. why global: it is what RCAN measured; the price is that a
    tiled image's output depends slightly on each tile's content."""

    def __init__(self, width: int, reduction: int = 16):
        super().__init__()
        hidden = max(4, width // reduction)
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(width, hidden, 1), nn.ReLU(True),
                                  nn.Conv2d(hidden, width, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class _ResBlock(nn.Module):
    def __init__(self, width: int, padding: str = "zeros", attention: bool = False):
        super().__init__()
        layers = [_conv(width, width, padding), nn.ReLU(True), _conv(width, width, padding)]
        self.conv = nn.Sequential(*layers, *([_ChannelAttention(width)] if attention else []))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x)


def _zero_last(module: nn.Module) -> None:
    # The residual on top of bicubic starts at zero, so step 0 already equals bicubic (a sane
    # preview, and the PSNR model can only improve on it).
    last = [m for m in module.modules() if isinstance(m, nn.Conv2d)][-1]
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)


@register("generator", "srresnet", "SRResNet super-resolution generator (x2/x4/x8, pixel shuffle, no BN)")
class SRResNet(_SRBase):
    def __init__(self, channels: int = 3, scale: int = 4, width: int = 64, blocks: int = 16, upsample: str = "progressive",
                 padding: str = "zeros", attention: bool = False, icnr: bool = False):
        super().__init__()
        self.channels, self.scale = channels, scale
        pad = _check_padding(padding)
        self.head = _conv(channels, width, pad)
        self.body = nn.Sequential(*[_ResBlock(width, pad, attention) for _ in range(blocks)], _conv(width, width, pad))
        self.up, out = _upsampler(width, scale, upsample, pad)
        if icnr:
            _icnr(self.up, scale)
        self.tail = _conv(out, channels, pad)
        _zero_last(self.tail)


class _DenseBlock(nn.Module):
    def __init__(self, width: int, growth: int, padding: str = "zeros"):
        super().__init__()
        self.convs = nn.ModuleList(_conv(width + i * growth, growth if i < 4 else width, padding) for i in range(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for i, conv in enumerate(self.convs):
            out = conv(torch.cat(feats, 1))
            if i < 4:
                feats.append(F.leaky_relu(out, 0.2))
        return x + 0.2 * out  # residual scaling: keeps a deep stack of dense blocks trainable without BN


class _RRDB(nn.Module):
    def __init__(self, width: int, growth: int, padding: str = "zeros"):
        super().__init__()
        self.blocks = nn.Sequential(*[_DenseBlock(width, growth, padding) for _ in range(3)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.2 * self.blocks(x)


@register("generator", "rrdb", "ESRGAN RRDB super-resolution generator (residual-in-residual dense blocks)")
class RRDBNet(_SRBase):
    def __init__(self, channels: int = 3, scale: int = 4, width: int = 64, blocks: int = 23, growth: int = 32,
                 upsample: str = "progressive", padding: str = "zeros"):
        super().__init__()
        self.channels, self.scale = channels, scale
        pad = _check_padding(padding)
        self.head = _conv(channels, width, pad)
        self.body = nn.Sequential(*[_RRDB(width, growth, pad) for _ in range(blocks)], _conv(width, width, pad))
        self.up, out = _upsampler(width, scale, upsample, pad)
        self.tail = nn.Sequential(_conv(out, out, pad), nn.LeakyReLU(0.2, True), _conv(out, channels, pad))
        _zero_last(self.tail)


# ---- inpainting ------------------------------------------------------------------------------
class GatedConv(nn.Module):
    """``ELU(features) * sigmoid(gate)`` from one convolution with twice the outputs."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, 2 * cout, k, stride, dilation * (k - 1) // 2, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat, gate = self.conv(x).chunk(2, dim=1)
        return F.elu(feat) * torch.sigmoid(gate)


@register("generator", "gated-inpaint", "gated-convolution encoder-decoder for free-form inpainting (DeepFill v2 style)")
class GatedInpaintNet(ConfigModule):
    family = INPAINT

    def __init__(self, channels: int = 3, width: int = 32, dilations: tuple[int, ...] = (2, 4, 8, 16), prefill: str = "none"):
        super().__init__()
        if prefill not in PREFILLS:
            raise GancvError(f"generator.prefill={prefill!r}: choose one of {', '.join(PREFILLS)}")
        self.channels, self.prefill = channels, prefill
        w = width
        self.enc1 = nn.Sequential(GatedConv(channels + 1, w, 5), GatedConv(w, w))
        self.enc2 = nn.Sequential(GatedConv(w, 2 * w, 3, 2), GatedConv(2 * w, 2 * w))
        self.enc3 = nn.Sequential(GatedConv(2 * w, 4 * w, 3, 2), GatedConv(4 * w, 4 * w))
        # Dilated gated convs at 1/4 resolution: a receptive field wide enough to fill big holes.
        self.middle = nn.Sequential(*[GatedConv(4 * w, 4 * w, 3, 1, d) for d in dilations], GatedConv(4 * w, 4 * w))
        self.dec2 = nn.Sequential(GatedConv(4 * w + 2 * w, 2 * w), GatedConv(2 * w, 2 * w))
        self.dec1 = nn.Sequential(GatedConv(2 * w + w, w), GatedConv(w, w // 2))
        self.out = nn.Conv2d(w // 2, channels, 3, 1, 1)
        if prefill != "none":
            # A residual on top of the classical fill that starts at zero: step 0 is the fill
            # itself, and training only has to add what smooth continuation misses (texture,
            # edges), as the SR networks start from bicubic.
            _zero_last(self.out)

    multiple = 4  # two stride-2 stages: input sides must be multiples of 4 (callers pad)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``image`` in [-1, 1], ``mask`` 1 = hole; returns the full predicted image in [-1, 1] (with a
        prefill, fill + residual, not clamped)."""
        check_shape("GatedInpaintNet image", image, (None, self.channels, None, None))
        check_shape("GatedInpaintNet mask", mask, (image.shape[0], 1, image.shape[2], image.shape[3]))
        if image.shape[2] % self.multiple or image.shape[3] % self.multiple:
            raise GancvError(f"GatedInpaintNet needs sides divisible by {self.multiple}, got {tuple(image.shape[2:])}; "
                             "pad the image (gancv.tiling.pad_to_multiple)")
        # The hole is zeroed or classically filled from the known pixels: either way the network
        # cannot see (or learn to copy) what it must fill.
        base = prefill(self.prefill, image, mask)
        x = torch.cat([base, mask], dim=1)
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.middle(self.enc3(e2))
        d2 = self.dec2(torch.cat([F.interpolate(e3, scale_factor=2, mode="nearest"), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, scale_factor=2, mode="nearest"), e1], 1))
        if self.prefill == "none":
            return torch.tanh(self.out(d1))
        return base + self.out(d1)  # unbounded: the caller clamps (a tanh would squash the fill)


def composite(predicted: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Predicted pixels inside the hole, the original ones everywhere else."""
    return predicted * mask + image * (1 - mask)


# ---- discriminators --------------------------------------------------------------------------
class _PatchTrunk(nn.Module):
    def __init__(self, channels: int, width: int, layers: int):
        super().__init__()
        convs, cin = [], channels
        for i in range(layers):
            cout = min(width * 2**i, 8 * width)
            convs.append(spectral_norm(nn.Conv2d(cin, cout, 4, 2, 1)))
            cin = cout
        self.convs = nn.ModuleList(convs)
        self.head = spectral_norm(nn.Conv2d(cin, 1, 3, 1, 1))

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
            feats.append(x)
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)[-1]).flatten(1)


@register("discriminator", "sn-patchgan", "spectral-norm PatchGAN: one logit per patch, any image size")
class PatchDiscriminator(ConfigModule):
    family = SR

    def __init__(self, channels: int = 3, width: int = 64, layers: int = 4):
        super().__init__()
        self.channels = channels
        self.trunk = _PatchTrunk(channels, width, layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> patch logits (N, P)."""
        check_shape("PatchDiscriminator input", x, (None, self.channels, None, None))
        return self.trunk(x)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.trunk.features(x)


@register("discriminator", "global-local-patchgan", "global + local SN-PatchGAN pair for inpainting")
class GlobalLocalDiscriminator(ConfigModule):
    family = INPAINT

    def __init__(self, channels: int = 3, width: int = 32, layers: int = 4, local_layers: int = 3):
        super().__init__()
        self.channels = channels
        # The mask is an input too: D judges whether the filled region fits where the hole was.
        self.global_d = _PatchTrunk(channels + 1, width, layers)
        self.local_d = _PatchTrunk(channels + 1, width, local_layers)

    def forward(self, image: torch.Tensor, mask: torch.Tensor, local: torch.Tensor, local_mask: torch.Tensor) -> torch.Tensor:
        """Whole images and crops around their holes -> all patch logits (N, P_global + P_local)."""
        check_shape("GlobalLocalDiscriminator image", image, (None, self.channels, None, None))
        check_shape("GlobalLocalDiscriminator local", local, (image.shape[0], self.channels, None, None))
        g = self.global_d(torch.cat([image, mask], 1))
        loc = self.local_d(torch.cat([local, local_mask], 1))
        return torch.cat([g, loc], 1)
