"""Tiled inference for fully convolutional image-to-image networks (translate, upscale, inpaint).

Large images never go through a network whole: they are cut into overlapping tiles, each tile is
run on the device, and the outputs are blended with a smooth window so no seams show. Memory is
bounded by the tile size, whatever the image size. Inputs of any size are padded (reflect) to
the network's size multiple and the output is cropped back, so callers get the original size
(times ``scale`` for super-resolution).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .errors import GancvError

ImageFn = Callable[[torch.Tensor], torch.Tensor]


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad (N, C, H, W) on the bottom/right to a multiple of ``multiple``; returns the original (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"  # reflect needs pad < size
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


def _layout(length: int, tile: int, overlap: int, multiple: int = 1) -> tuple[int, list[int]]:
    """Tile size and start positions along one axis.

    As few tiles as the overlap allows, each shrunk to the smallest size (a multiple of
    ``multiple``) that still covers the axis, and spread evenly: a fixed stride with a last
    tile flush to the border would recompute up to a whole tile (1024x768 in 512-px tiles:
    six 512x512 tiles, twice the image's pixels; balanced: six 364x400 tiles, 1.11x).
    Neighbours overlap by at least ``overlap``.
    """
    if length <= tile:
        return length, [0]
    n = -(-(length - overlap) // (tile - overlap))
    size = -(-(length + (n - 1) * overlap) // n)
    size = min(tile, -(-size // multiple) * multiple)
    return size, [round(i * (length - size) / (n - 1)) for i in range(n)]


def _ramp(n: int, overlap: int, at_start: bool, at_end: bool, device: torch.device) -> torch.Tensor:
    """Blend weights along one axis of a tile. Only edges inside the image are tapered: the
    outer quarter of the overlap gets weight 0 (those pixels saw the tile's zero padding, so
    they would differ from an untiled run) and the weight rises linearly to 1 at 3/4 overlap."""
    r = torch.ones(n, device=device)
    if overlap <= 0:
        return r
    d = torch.arange(n, device=device, dtype=torch.float32) + 0.5
    ramp = lambda dist: ((dist - overlap / 4) / (overlap / 2)).clamp(0, 1)  # noqa: E731
    if at_start:
        r = r * ramp(d)
    if at_end:
        r = r * ramp(n - d)
    return r


@torch.no_grad()
def tiled_apply(fn: ImageFn, x: torch.Tensor, *, tile: int = 256, overlap: int = 32, scale: int = 1,
                multiple: int = 1, device: torch.device | str | None = None,
                needed: torch.Tensor | None = None) -> torch.Tensor:
    """Apply ``fn`` (N, C, H, W) -> (N, C', H*scale, W*scale) tile by tile; returns a CPU tensor.

    ``x`` may live on the CPU; only one tile at a time is moved to ``device``. ``tile`` and
    ``overlap`` are in input pixels; ``multiple`` is the size the network needs (e.g. 2**depth).
    ``needed``: an optional bool (H, W) map; tiles without a True pixel are not run (inpainting
    only needs the tiles that touch the hole).
    """
    if x.dim() != 4:
        raise GancvError(f"tiled_apply expects (N, C, H, W), got shape {tuple(x.shape)}")
    if tile < 1 or overlap < 0 or overlap * 2 >= tile:
        raise GancvError(f"tile={tile}, overlap={overlap}: need tile > 2 * overlap >= 0")
    tile = max(multiple, tile - tile % multiple)
    device = torch.device(device) if device is not None else x.device
    padded, (h, w) = pad_to_multiple(x, multiple)
    H, W = padded.shape[-2:]
    th, tops = _layout(H, tile, overlap, multiple)
    tw, lefts = _layout(W, tile, overlap, multiple)
    out = torch.zeros(0)
    weight = torch.zeros(1, 1, H * scale, W * scale)
    for top in tops:
        for left in lefts:
            if needed is not None and not needed[..., top : top + th, left : left + tw].any():
                continue
            piece = padded[..., top : top + th, left : left + tw].to(device)
            y = fn(piece).float()
            if y.shape[-2:] != (th * scale, tw * scale):
                raise GancvError(f"the network returned {tuple(y.shape[-2:])} for a {th}x{tw} tile; expected scale {scale}")
            o = overlap * scale
            win = (_ramp(th * scale, o, top > 0, top + th < H, y.device)[:, None]
                   * _ramp(tw * scale, o, left > 0, left + tw < W, y.device)[None, :])
            if not out.numel():
                out = torch.zeros(x.shape[0], y.shape[1], H * scale, W * scale)
            ts, ls = top * scale, left * scale
            out[..., ts : ts + th * scale, ls : ls + tw * scale] += (y * win).cpu()
            weight[..., ts : ts + th * scale, ls : ls + tw * scale] += win.cpu()
    if not out.numel():
        raise GancvError("no tile needed computing: the `needed` map is all False")
    # Pixels that only skipped tiles cover have weight 0 and come back as 0.
    return (out / weight.clamp_min(1e-12))[..., : h * scale, : w * scale]


def tile_count(h: int, w: int, tile: int, overlap: int) -> int:
    """How many tiles ``tiled_apply`` runs for an image (for progress bars)."""
    return len(_layout(h, tile, overlap)[1]) * len(_layout(w, tile, overlap)[1])
