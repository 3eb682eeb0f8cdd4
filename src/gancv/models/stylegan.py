"""StyleGAN2-style generator and residual discriminator (Karras et al. 2020, "Analyzing and
Improving the Image Quality of StyleGAN").

Generator = mapping network (z -> w, with a tracked ``w_avg`` for truncation) + synthesis
network (a learned 4x4 constant, modulated/demodulated 3x3 convs, per-layer noise, and a
skip or residual output). Every synthesis layer reads its own w from ``ws`` (N, num_ws, w_dim),
which is what style mixing, w+ inversion and latent editing act on. The discriminator is the
paper's residual network with a minibatch-stddev layer; conditioning is by projection.

Simplifications against the official code, each chosen for CPU-sized models: upsampling is
bilinear interpolation followed by a 3x3 conv (instead of a transposed conv + FIR blur),
downsampling is 2x2 average pooling, and modulation scales activations rather than weights
(the "non-fused" path of the official code, mathematically the same and plain convs).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .base import ConfigModule, check_shape, register

SQRT2 = math.sqrt(2.0)


def resolution_log2(size: int) -> int:
    log2 = int(round(math.log2(size))) if size > 0 else 0
    if size < 8 or 2**log2 != size:
        raise ValueError(f"image size {size} is not a power of two >= 8 (StyleGAN supports 8, 16, 32, ..., 256 px); "
                         "set image_size to one, e.g. image_size=32")
    return log2


def stylegan_channels(res: int, channel_base: int, channel_max: int) -> int:
    return max(1, min(channel_base // res, channel_max))


def lrelu(x: torch.Tensor) -> torch.Tensor:
    # sqrt(2) gain keeps activations at unit variance with equalised-lr weights (He init).
    return F.leaky_relu(x, 0.2) * SQRT2


class EqualLinear(nn.Module):
    """Linear layer with the equalised learning rate: weights ~ N(0, 1/lr_mul), scaled at runtime,
    so Adam's per-parameter step size is the same for every layer."""

    def __init__(self, fan_in: int, fan_out: int, bias_init: float = 0.0, lr_mul: float = 1.0, act: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(fan_out, fan_in) / lr_mul)
        self.bias = nn.Parameter(torch.full((fan_out,), float(bias_init) / lr_mul))
        self.scale, self.lr_mul, self.act = lr_mul / math.sqrt(fan_in), lr_mul, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return lrelu(x) if self.act else x


class EqualConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, bias: bool = True, act: bool = True, down: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.scale, self.act, self.down, self.pad = 1 / math.sqrt(cin * kernel * kernel), act, down, kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight * self.scale, self.bias, padding=self.pad)
        if self.down:
            x = F.avg_pool2d(x, 2)
        return lrelu(x) if self.act else x


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class MappingNetwork(nn.Module):
    """z (+ label embedding) -> w through an MLP with 0.01 lr multiplier, as in the paper."""

    def __init__(self, z_dim: int, w_dim: int, num_layers: int, num_classes: int, lr_mul: float = 0.01):
        super().__init__()
        self.z_dim, self.w_dim, self.num_classes = z_dim, w_dim, num_classes
        self.embed = EqualLinear(num_classes, w_dim) if num_classes else None
        dims = [z_dim + (w_dim if num_classes else 0)] + [w_dim] * num_layers
        self.layers = nn.Sequential(*[EqualLinear(a, b, lr_mul=lr_mul, act=True) for a, b in zip(dims[:-1], dims[1:])])

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        x = normalize_2nd_moment(z)
        if self.embed is not None:
            if labels is None:
                raise ValueError("this generator is class-conditional: pass labels")
            onehot = F.one_hot(labels.long(), self.num_classes).to(z.dtype)
            x = torch.cat([x, normalize_2nd_moment(self.embed(onehot))], dim=1)
        return self.layers(x)


class ModulatedConv(nn.Module):
    """Modulated (and demodulated) conv: per-sample input scales from w, output rescaled to unit
    variance. ``up``: bilinear 2x upsampling before the conv."""

    def __init__(self, cin: int, cout: int, kernel: int, w_dim: int, demodulate: bool = True, up: bool = False):
        super().__init__()
        self.affine = EqualLinear(w_dim, cin, bias_init=1.0)  # styles start at 1 = an unmodulated conv
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
        self.scale, self.demodulate, self.up, self.pad = 1 / math.sqrt(cin * kernel * kernel), demodulate, up, kernel // 2

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w)  # (N, cin)
        weight = self.weight * self.scale
        x = x * styles[:, :, None, None]
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = F.conv2d(x, weight, padding=self.pad)
        if self.demodulate:
            # ||W * s||_2 per output channel, computed from (cout, cin) energies: no per-sample weights.
            energy = styles.square() @ weight.square().sum(dim=(2, 3)).t()  # (N, cout)
            x = x * (energy + 1e-8).rsqrt()[:, :, None, None]
        return x


class SynthesisLayer(nn.Module):
    def __init__(self, cin: int, cout: int, w_dim: int, resolution: int, up: bool = False):
        super().__init__()
        self.conv = ModulatedConv(cin, cout, 3, w_dim, up=up)
        self.resolution = resolution
        # Fixed noise for noise_mode="const": deterministic sampling, projection and edits.
        self.register_buffer("noise_const", torch.randn(1, 1, resolution, resolution))
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(cout))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        x = self.conv(x, w)
        if noise_mode == "random":
            x = x + torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device, dtype=x.dtype) * self.noise_strength
        elif noise_mode == "const":
            x = x + self.noise_const * self.noise_strength
        return lrelu(x + self.bias[None, :, None, None])


class ToRGB(nn.Module):
    def __init__(self, cin: int, channels: int, w_dim: int):
        super().__init__()
        self.conv = ModulatedConv(cin, channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.conv(x, w) + self.bias[None, :, None, None]


class SynthesisBlock(nn.Module):
    """One resolution: (const | 2x up conv) + conv, then to-RGB (skip) or a residual path."""

    def __init__(self, cin: int, cout: int, channels: int, w_dim: int, resolution: int, architecture: str, is_last: bool):
        super().__init__()
        self.first = resolution == 4
        self.architecture, self.is_last = architecture, is_last
        if self.first:
            self.const = nn.Parameter(torch.randn(cout, 4, 4))
        else:
            self.conv0 = SynthesisLayer(cin, cout, w_dim, resolution, up=True)
        self.conv1 = SynthesisLayer(cout, cout, w_dim, resolution)
        self.torgb = ToRGB(cout, channels, w_dim) if (architecture == "skip" or is_last) else None
        if architecture == "resnet" and not self.first:
            self.skip = EqualConv2d(cin, cout, 1, bias=False, act=False)
        self.num_conv = 1 if self.first else 2

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor,
                noise_mode: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        # ws: (N, num_conv + 1, w_dim), the last one feeds to-RGB (shared with the next block's conv0).
        if self.first:
            x = self.const[None].expand(ws.shape[0], -1, -1, -1)
            x = self.conv1(x, ws[:, 0], noise_mode)
        elif self.architecture == "resnet":
            y = self.skip(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))
            x = self.conv1(self.conv0(x, ws[:, 0], noise_mode), ws[:, 1], noise_mode)
            x = (x + y) / SQRT2  # why /sqrt2: keeps the sum of two unit-variance paths at unit variance
        else:
            x = self.conv1(self.conv0(x, ws[:, 0], noise_mode), ws[:, 1], noise_mode)
        if self.torgb is not None:
            rgb = self.torgb(x, ws[:, self.num_conv])
            if img is not None:
                img = F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False)
            img = rgb if img is None else img + rgb
        return x, img


@register("generator", "stylegan", "StyleGAN2-style generator: mapping net, modulated convs, noise, skip/resnet output (8-256 px)")
class StyleGANGenerator(ConfigModule):
    def __init__(self, shape: Sequence[int] = (3, 32, 32), z_dim: int = 128, w_dim: int = 128, num_classes: int = 0,
                 mapping_layers: int = 4, channel_base: int = 2048, channel_max: int = 128, architecture: str = "skip",
                 w_avg_beta: float = 0.995, checkpointing: bool = False):
        super().__init__()
        c, h, w = shape
        if h != w:
            raise ValueError(f"StyleGAN needs square images, got {h}x{w}")
        if architecture not in ("skip", "resnet"):
            raise ValueError(f"architecture must be 'skip' or 'resnet', got {architecture!r}")
        log2 = resolution_log2(h)
        self.shape, self.z_dim, self.w_dim, self.num_classes = (c, h, w), z_dim, w_dim, num_classes
        self.w_avg_beta, self.checkpointing = w_avg_beta, checkpointing
        self.mapping = MappingNetwork(z_dim, w_dim, mapping_layers, num_classes)
        # The running mean of w: the centre truncation pulls towards and projection starts from.
        self.register_buffer("w_avg", torch.zeros(w_dim))
        self.blocks = nn.ModuleList()
        cin = 0
        for i, res in enumerate(2**k for k in range(2, log2 + 1)):
            cout = stylegan_channels(res, channel_base, channel_max)
            self.blocks.append(SynthesisBlock(cin, cout, c, w_dim, res, architecture, is_last=(res == h)))
            cin = cout
        self.num_ws = 2 * log2 - 2

    # ---- the two halves, exposed for mixing, truncation, inversion and editing --------------
    def map(self, z: torch.Tensor, labels: torch.Tensor | None = None, truncation_psi: float = 1.0,
            truncation_cutoff: int | None = None) -> torch.Tensor:
        """z -> ws (N, num_ws, w_dim); truncation pulls w towards ``w_avg`` (psi=1: none)."""
        check_shape("StyleGANGenerator input z", z, (None, self.z_dim))
        w = self.mapping(z, labels)
        if self.training and self.w_avg_beta < 1:
            with torch.no_grad():
                self.w_avg.copy_(w.detach().float().mean(0).lerp(self.w_avg, self.w_avg_beta))
        ws = w[:, None].repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            ws[:, :cutoff] = self.w_avg.lerp(ws[:, :cutoff], truncation_psi)
        return ws

    def synthesis(self, ws: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        check_shape("StyleGANGenerator.synthesis ws", ws, (None, self.num_ws, self.w_dim))
        x = img = None
        index = 0
        for block in self.blocks:
            block_ws = ws[:, index : index + block.num_conv + 1]
            if self.checkpointing and self.training and torch.is_grad_enabled():
                # Trade compute for memory: activations are recomputed in backward.
                x, img = checkpoint(block, x, img, block_ws, noise_mode, use_reentrant=False)
            else:
                x, img = block(x, img, block_ws, noise_mode)
            index += block.num_conv
        # tanh: the toolkit's image contract is [-1, 1]; StyleGAN's unbounded output is squashed here.
        return torch.tanh(img)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None, truncation_psi: float = 1.0,
                noise_mode: str = "random") -> torch.Tensor:
        return self.synthesis(self.map(z, labels, truncation_psi), noise_mode)

    def modulation_layers(self) -> list[nn.Module]:
        """The style affines of the synthesis convs (to-RGB excluded), first to last."""
        return [m.conv.affine for m in self.modules() if isinstance(m, SynthesisLayer)]


def minibatch_stddev(x: torch.Tensor, group_size: int) -> torch.Tensor:
    """Append the mean per-group stddev of features as one channel, so D can see low variety."""
    n, c, h, w = x.shape
    g = min(group_size, n)
    while n % g:  # the largest group size <= group_size that divides the batch
        g -= 1
    y = x.reshape(g, n // g, c, h, w)
    y = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt()  # (n/g, c, h, w)
    y = y.mean(dim=(1, 2, 3)).reshape(-1, 1, 1, 1).repeat(g, 1, h, w)
    return torch.cat([x, y], dim=1)


class DiscriminatorBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv0 = EqualConv2d(cin, cin, 3)
        self.conv1 = EqualConv2d(cin, cout, 3, down=True)
        self.skip = EqualConv2d(cin, cout, 1, bias=False, act=False, down=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.skip(x) + self.conv1(self.conv0(x))) / SQRT2


@register("discriminator", "stylegan", "StyleGAN2 residual discriminator with minibatch stddev (projection-conditional)")
class StyleGANDiscriminator(ConfigModule):
    def __init__(self, shape: Sequence[int] = (3, 32, 32), num_classes: int = 0, channel_base: int = 2048,
                 channel_max: int = 128, mbstd_group: int = 4, cmap_dim: int = 128, checkpointing: bool = False):
        super().__init__()
        c, h, w = shape
        if h != w:
            raise ValueError(f"StyleGAN needs square images, got {h}x{w}")
        log2 = resolution_log2(h)
        self.shape, self.num_classes, self.mbstd_group, self.checkpointing = (c, h, w), num_classes, mbstd_group, checkpointing
        ch = lambda res: stylegan_channels(res, channel_base, channel_max)  # noqa: E731
        self.fromrgb = EqualConv2d(c, ch(h), 1)
        self.blocks = nn.Sequential(*[DiscriminatorBlock(ch(2**k), ch(2 ** (k - 1))) for k in range(log2, 2, -1)])
        c4 = ch(4)
        self.conv = EqualConv2d(c4 + 1, c4, 3)
        self.fc = EqualLinear(c4 * 16, c4, act=True)
        out_dim = cmap_dim if num_classes else 1
        self.out = EqualLinear(c4, out_dim)
        # Projection conditioning (Miyato & Koyama): logit = <features, embed(label)> / sqrt(dim).
        self.cmap = EqualLinear(num_classes, cmap_dim) if num_classes else None
        self.cmap_dim = cmap_dim

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        check_shape("StyleGANDiscriminator input", x, (None, *self.shape))
        x = self.fromrgb(x)
        for block in self.blocks:
            if self.checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        x = self.conv(minibatch_stddev(x, self.mbstd_group))
        x = self.out(self.fc(x.flatten(1)))
        if self.cmap is not None:
            if labels is None:
                raise ValueError("this discriminator is class-conditional: pass labels")
            cmap = self.cmap(F.one_hot(labels.long(), self.num_classes).to(x.dtype))
            return (x * cmap).sum(dim=1) / math.sqrt(self.cmap_dim)
        return x.flatten()
