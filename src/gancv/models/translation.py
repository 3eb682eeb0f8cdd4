"""Image-to-image networks (pix2pix, CycleGAN): U-Net and ResNet generators, PatchGAN discriminators.

Architectures follow Isola et al. 2017 (pix2pix) and Zhu et al. 2017 (CycleGAN) and their
reference code: U-Net with skip connections between mirrored encoder/decoder layers (no norm on
the outermost and innermost encoder layers, dropout 0.5 in the three innermost decoder layers);
ResNet generator c7s1-64, d128, d256, R256 x n, u128, u64, c7s1-3 with reflection padding and
instance norm; the n-layer PatchGAN whose 3-layer version sees 70x70 input patches, and the
1x1 PixelGAN. Generators map (N, C_in, H, W) in [-1, 1] to (N, C_out, H, W) in [-1, 1] for any H, W
that are multiples of ``multiple``; discriminators return a map of patch logits (N, 1, h, w).

``residual=True`` (off in the papers' networks) makes a generator predict the change to its input,
``G(x) = x + f(x)`` with no final tanh ("global residual learning", as in VDSR/EDSR): it starts
at the identity instead of at noise, so the part of the output that equals the input (luma, edges,
flat colour) need not be rebuilt through the down-sampling path. Outputs can leave [-1, 1] slightly
during training; the L1/cycle terms pull them back, and inference clamps.
"""
from __future__ import annotations

import functools
from typing import Callable

import torch
from torch import nn

from ..errors import GancvError
from ..nn import spectral_norm_all
from .base import ConfigModule, check_shape, register, register_variant

NORMS = ("batch", "instance", "layer", "none")
INITS = ("normal", "xavier", "kaiming", "orthogonal")


def norm_layer(kind: str) -> Callable[[int], nn.Module]:
    if kind == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True)
    if kind == "instance":
        # why no affine / no running stats: the reference CycleGAN/pix2pix setting; statistics come
        # from each image, so train and test behave the same.
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    if kind == "layer":
        # why: also per image, but over all channels together, so a feature channel's offset against
        # the others (a colour tint, which instance norm subtracts away) stays visible
        return functools.partial(nn.GroupNorm, 1, affine=False)
    if kind == "none":
        return lambda channels: nn.Identity()
    raise ValueError(f"norm={kind!r} is not one of {', '.join(NORMS)}")


def init_weights(net: nn.Module, kind: str = "normal", gain: float = 0.02) -> None:
    """The reference code's init options; ``normal`` N(0, gain) is what both papers used."""
    if kind not in INITS:
        raise ValueError(f"init={kind!r} is not one of {', '.join(INITS)}")

    def apply(m: nn.Module) -> None:
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if kind == "normal":
                nn.init.normal_(m.weight, 0.0, gain)
            elif kind == "xavier":
                nn.init.xavier_normal_(m.weight, gain=gain)
            elif kind == "kaiming":
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            else:
                nn.init.orthogonal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)

    net.apply(apply)


UPSAMPLES = ("transpose", "resize")


def up_conv(cin: int, cout: int, upsample: str, bias: bool = True, resnet: bool = False) -> list[nn.Module]:
    """A 2x up-sampling convolution.

    ``transpose``: the papers' transposed convolution (4x4 stride 2 in the U-Net, 3x3 stride 2 with
    output padding in the ResNet generator). Its kernel overlaps unevenly across output pixels, which
    leaves a checkerboard pattern that the discriminator has to learn away (Odena et al. 2016).
    ``resize``: nearest-neighbour 2x up-sampling followed by a 3x3 convolution: every output pixel
    sees the same number of kernel taps, so no checkerboard is built in.
    """
    if upsample == "transpose":
        if resnet:
            return [nn.ConvTranspose2d(cin, cout, 3, 2, 1, output_padding=1, bias=bias)]
        return [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=bias)]
    if upsample == "resize":
        return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, 1, 1, bias=bias)]
    raise ValueError(f"upsample={upsample!r} is not one of {', '.join(UPSAMPLES)}")


def _check_residual(residual: bool, in_channels: int, out_channels: int) -> None:
    if residual and in_channels != out_channels:
        raise ValueError(f"residual=True adds the input to the output, so in_channels ({in_channels}) must equal "
                         f"out_channels ({out_channels}); set residual=false")


class ImageToImage(ConfigModule):
    """Shared boundary checks of the translation generators (image in, image out)."""

    family = "translation"  # image in, image out: not a latent -> image generator (no z, no labels)
    in_channels: int
    out_channels: int
    multiple: int  # H and W must be multiples of this (the tiler pads to it)

    def check_input(self, x: torch.Tensor) -> None:
        check_shape(f"{type(self).__name__} input", x, (None, self.in_channels, None, None))
        h, w = x.shape[-2:]
        if h % self.multiple or w % self.multiple:
            raise GancvError(f"{type(self).__name__}: input {h}x{w} is not a multiple of {self.multiple}; "
                             "pad it (gancv translate does) or crop it")


# ---- U-Net ---------------------------------------------------------------------------------------
class _UNetBlock(nn.Module):
    """One encoder/decoder level; ``inner`` is the rest of the U below it (None at the bottom)."""

    def __init__(self, outer: int, inner_ch: int, inner: nn.Module | None, norm: Callable[[int], nn.Module],
                 outermost: bool = False, in_channels: int | None = None, out_channels: int | None = None,
                 dropout: bool = False, use_bias: bool = True, tanh: bool = True, upsample: str = "transpose"):
        super().__init__()
        self.outermost = outermost
        cin = in_channels if in_channels is not None else outer
        down = [nn.Conv2d(cin, inner_ch, 4, 2, 1, bias=use_bias)]
        if outermost:
            up = [nn.ReLU(True), *up_conv(inner_ch * 2, out_channels or outer, upsample)]
            up += [nn.Tanh()] if tanh else []
            layers = down + [inner] + up  # type: ignore[list-item]
        elif inner is None:  # innermost: no norm on the 1x1 bottleneck (it would zero it out)
            up = [nn.ReLU(True), *up_conv(inner_ch, outer, upsample, use_bias), norm(outer)]
            layers = [nn.LeakyReLU(0.2, True)] + down + up
        else:
            up = [nn.ReLU(True), *up_conv(inner_ch * 2, outer, upsample, use_bias), norm(outer)]
            layers = [nn.LeakyReLU(0.2, True)] + down + [norm(inner_ch), inner] + up
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)  # the skip connection: low-level detail bypasses the bottleneck


@register("generator", "unet", "U-Net image-to-image generator with skip connections (pix2pix); num_downs sets the depth")
class UNetGenerator(ImageToImage):
    def __init__(self, in_channels: int = 3, out_channels: int = 3, num_downs: int = 8, width: int = 64,
                 norm: str = "batch", dropout: bool = True, init: str = "normal", residual: bool = False,
                 upsample: str = "transpose", pixel_skip: bool = False, pixel_hidden: int = 0,
                 pixel_kernel: int = 1):
        super().__init__()
        if num_downs < 2:
            raise ValueError(f"num_downs must be >= 2, got {num_downs}")
        _check_residual(residual, in_channels, out_channels)
        self.in_channels, self.out_channels, self.multiple = in_channels, out_channels, 2**num_downs
        self.residual = residual
        norm_fn = norm_layer(norm)
        use_bias = norm != "batch"  # a bias before BatchNorm is cancelled by its mean subtraction
        ch = [min(width * 2**i, width * 8) for i in range(num_downs)]  # encoder widths, capped at 8x
        block: nn.Module | None = None
        for level in reversed(range(1, num_downs)):
            innermost = block is None
            # as in the reference: dropout in the 8x-wide decoder levels above the innermost one
            drop = dropout and not innermost and ch[level - 1] == width * 8
            block = _UNetBlock(ch[level - 1], ch[level], block, norm_fn, dropout=drop, use_bias=use_bias,
                               upsample=upsample)
        self.model = _UNetBlock(out_channels, ch[0], block, norm_fn, outermost=True, in_channels=in_channels,
                                out_channels=out_channels, use_bias=use_bias, tanh=not residual, upsample=upsample)
        init_weights(self, init)
        # why: the U-Net's only path to the output runs through its stride-2 first layer, so a per-pixel
        # map of the input (a colour matrix) must be rebuilt at half resolution; a 1x1 conv of the
        # input added to the output gives it directly. Zero-initialised: G starts where it did without.
        # pixel_hidden > 0 makes that path a per-pixel MLP (1x1 conv, ReLU, 1x1 conv): a per-pixel
        # *nonlinear* map, such as posterising each channel to a few levels, which a linear map cannot be;
        # pixel_kernel=3 widens its first conv to a full-resolution 3x3 neighbourhood (e.g. edge strength).
        if pixel_hidden < 0 or (pixel_hidden and not pixel_skip) or pixel_kernel % 2 == 0 or \
                (pixel_kernel != 1 and not pixel_hidden):
            raise ValueError(f"pixel_hidden must be >= 0 and needs pixel_skip=True, pixel_kernel odd and needs "
                             f"pixel_hidden, got {pixel_hidden}, {pixel_kernel}")
        self.pixel_skip: nn.Module | None = None
        if pixel_skip:
            hidden = [nn.ReplicationPad2d(pixel_kernel // 2), nn.Conv2d(in_channels, pixel_hidden, pixel_kernel),
                      nn.ReLU(True)] if pixel_hidden else []
            last = nn.Conv2d(pixel_hidden or in_channels, out_channels, 1, bias=False)
            nn.init.zeros_(last.weight)
            self.pixel_skip = nn.Sequential(*hidden, last) if hidden else last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        out = self.model(x)
        if self.pixel_skip is not None:
            out = out + self.pixel_skip(x)
        return x + out if self.residual else out


register_variant(UNetGenerator, "generator", "unet-128", "U-Net with 7 down-samplings (pix2pix unet_128, for 128 px training)",
                 num_downs=7)
register_variant(UNetGenerator, "generator", "unet-256",
                 "U-Net with 8 down-samplings (pix2pix unet_256, the paper's default at 256 px)", num_downs=8)


# ---- ResNet generator ----------------------------------------------------------------------------
class _ResBlock(nn.Module):
    def __init__(self, ch: int, norm: Callable[[int], nn.Module], use_bias: bool, dropout: bool):
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3, bias=use_bias), norm(ch), nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3, bias=use_bias), norm(ch)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


@register("generator", "resnet-blocks", "ResNet image-to-image generator (Johnson et al.; CycleGAN), n_blocks residual blocks")
class ResnetGenerator(ImageToImage):
    def __init__(self, in_channels: int = 3, out_channels: int = 3, n_blocks: int = 9, width: int = 64,
                 norm: str = "instance", dropout: bool = False, init: str = "normal", n_downsampling: int = 2,
                 residual: bool = False, upsample: str = "transpose"):
        super().__init__()
        if n_blocks < 0 or n_downsampling < 0:
            raise ValueError(f"n_blocks and n_downsampling must be >= 0, got {n_blocks}, {n_downsampling}")
        _check_residual(residual, in_channels, out_channels)
        self.in_channels, self.out_channels, self.multiple = in_channels, out_channels, 2**n_downsampling
        self.residual = residual
        norm_fn = norm_layer(norm)
        use_bias = norm != "batch"
        # why reflection padding: zero padding makes borders visibly darker in translated images
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, width, 7, bias=use_bias),
                                   norm_fn(width), nn.ReLU(True)]
        ch = width
        for _ in range(n_downsampling):
            layers += [nn.Conv2d(ch, ch * 2, 3, 2, 1, bias=use_bias), norm_fn(ch * 2), nn.ReLU(True)]
            ch *= 2
        layers += [_ResBlock(ch, norm_fn, use_bias, dropout) for _ in range(n_blocks)]
        for _ in range(n_downsampling):
            layers += [*up_conv(ch, ch // 2, upsample, use_bias, resnet=True), norm_fn(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, out_channels, 7)] + ([] if residual else [nn.Tanh()])
        self.model = nn.Sequential(*layers)
        init_weights(self, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        out = self.model(x)
        return x + out if self.residual else out


register_variant(ResnetGenerator, "generator", "resnet-6blocks", "ResNet generator with 6 blocks (CycleGAN at 128 px)",
                 n_blocks=6)
register_variant(ResnetGenerator, "generator", "resnet-9blocks",
                 "ResNet generator with 9 blocks (CycleGAN at 256 px, the paper's default)", n_blocks=9)


# ---- discriminators ------------------------------------------------------------------------------
class PatchDiscriminator(ConfigModule):
    """Shared boundary check: (N, in_channels, H, W) -> patch logits (N, 1, h, w)."""

    family = "translation"
    in_channels: int
    min_size: int = 1  # smallest input side that still leaves one patch logit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_shape(f"{type(self).__name__} input", x, (None, self.in_channels, None, None))
        if min(x.shape[-2:]) < self.min_size:
            raise GancvError(f"{type(self).__name__}: {x.shape[-2]}x{x.shape[-1]} images are too small for its "
                             f"{self.config.get('n_layers')} layers (needs >= {self.min_size} px); "
                             "lower discriminator.n_layers or raise image_size")
        return self.model(x)


@register("discriminator", "nlayer", "n-layer PatchGAN: each logit judges one receptive-field patch (n_layers=3: 70x70)")
class NLayerDiscriminator(PatchDiscriminator):
    def __init__(self, in_channels: int = 3, n_layers: int = 3, width: int = 64, norm: str = "batch",
                 init: str = "normal", spectral_norm: bool = False):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        self.in_channels = in_channels
        norm_fn = norm_layer(norm)
        use_bias = norm != "batch"
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            layers += [nn.Conv2d(width * prev, width * mult, 4, 2, 1, bias=use_bias), norm_fn(width * mult),
                       nn.LeakyReLU(0.2, True)]
        prev, mult = mult, min(2**n_layers, 8)
        layers += [nn.Conv2d(width * prev, width * mult, 4, 1, 1, bias=use_bias), norm_fn(width * mult),
                   nn.LeakyReLU(0.2, True), nn.Conv2d(width * mult, 1, 4, 1, 1)]
        self.model = nn.Sequential(*layers)
        # n stride-2 convs halve the side, then two 4x4 stride-1 convs each take one pixel off
        self.min_size = 3 * 2**n_layers
        init_weights(self, init)
        if spectral_norm:  # why: bounds D's Lipschitz constant (Miyato et al. 2018), so G's gradient stays smooth
            spectral_norm_all(self)

    @property
    def receptive_field(self) -> int:
        rf = 1
        for m in reversed([m for m in self.model if isinstance(m, nn.Conv2d)]):
            rf = (rf - 1) * m.stride[0] + m.kernel_size[0]
        return rf


register_variant(NLayerDiscriminator, "discriminator", "patchgan",
                 "70x70 PatchGAN (pix2pix / CycleGAN default): the 3-layer n-layer discriminator", n_layers=3)


@register("discriminator", "pixel", "1x1 PixelGAN: judges each pixel's colour alone (pix2pix ablation)")
class PixelDiscriminator(PatchDiscriminator):
    def __init__(self, in_channels: int = 3, width: int = 64, norm: str = "batch", init: str = "normal"):
        super().__init__()
        self.in_channels = in_channels
        norm_fn = norm_layer(norm)
        use_bias = norm != "batch"
        self.model = nn.Sequential(
            nn.Conv2d(in_channels, width, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(width, width * 2, 1, bias=use_bias), norm_fn(width * 2), nn.LeakyReLU(0.2, True),
            nn.Conv2d(width * 2, 1, 1, bias=use_bias),
        )
        init_weights(self, init)
