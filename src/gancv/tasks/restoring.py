"""Trained restoration models as ``gancv.load`` returns them: ``.upscale(images)`` and ``.inpaint(image, mask)``.

Images go in and come out as uint8 (C, H, W) tensors (PIL images and numpy arrays are accepted
too). Upscaling is tiled with overlap, so memory is bounded by the tile, not the image.
Inpainting copies every known pixel from the input unchanged: only the hole is synthesised.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..errors import GancvError
from ..models import build
from ..tiling import tiled_apply
from ..training.precision import inference_copy, inference_dtype, run_inference
from ..training.checkpoint import load_weights

Note = Callable[[str], None]
MIN_SR_SIDE = 4  # below this the bicubic skip and 3x3 convs see mostly padding
# Tiles in input pixels. SR: a 320-px tile is a 1280-px output at x4 (a few hundred MB of bf16
# activations), and a 512x512 image becomes four 264-px tiles. Inpainting: the dilated middle
# sees ~240 px around a pixel, so tiles are large and overlap generously; images up to 768 px
# go through whole, exactly as untiled.
SR_TILE, SR_OVERLAP = 320, 16
INPAINT_TILE, INPAINT_OVERLAP = 768, 96


def to_chw_uint8(image: Any, channels: int, name: str = "image", note: Note | None = None) -> torch.Tensor:
    """PIL / numpy (H, W[, C]) / torch (C, H, W) uint8 -> uint8 (channels, H, W)."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("L" if image.mode in ("L", "1", "I", "I;16", "F") else "RGB"))
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.array(image, dtype=np.uint8))  # a writable copy: torch refuses read-only buffers
        image = image[None] if image.dim() == 2 else image.permute(2, 0, 1)
    if not isinstance(image, torch.Tensor):
        raise GancvError(f"{name}: expected a PIL image, numpy array or uint8 tensor, got {type(image).__name__}")
    if image.dim() == 2:
        image = image[None]
    if image.dim() != 3 or image.shape[0] not in (1, 3, 4):
        raise GancvError(f"{name}: expected (C, H, W) with 1 or 3 channels, got shape {tuple(image.shape)}")
    if image.dtype != torch.uint8:
        raise GancvError(f"{name}: expected uint8 pixels (0..255), got {image.dtype}")
    image = image[:3]
    if image.shape[0] != channels:
        if channels == 1:
            from torchvision.transforms.v2.functional import rgb_to_grayscale

            image = rgb_to_grayscale(image)
            if note:
                note(f"{name}: colour image converted to grayscale (the model was trained on grayscale)")
        else:
            image = image.expand(3, -1, -1)
    return image.contiguous()


def _to_float(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 127.5 - 1


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


class _RestorationModel:
    task = ""

    def __init__(self, generator: nn.Module, info: dict[str, Any], device: torch.device, path: Path | None = None):
        self.generator = generator.to(device).eval().requires_grad_(False)
        self.info, self.device, self.path = info, device, path
        self._fast: dict[Any, nn.Module] = {}  # inference copies per dtype (training/precision.py)
        self.channels = int(info["channels"])
        self.kind = "image"

    @classmethod
    def load(cls, model_dir: Path, info: dict[str, Any], device: torch.device) -> Any:
        G = build("generator", info["generator"])
        load_weights(G, model_dir / "generator.safetensors", device)
        return cls(G, info, device, model_dir)


class SuperResolutionModel(_RestorationModel):
    """A trained SR generator: ``upscale(images)`` -> images ``scale`` times larger."""

    task = "super-resolution"
    capabilities: frozenset[str] = frozenset({"upscale"})

    def __init__(self, generator: nn.Module, info: dict[str, Any], device: torch.device, path: Path | None = None):
        super().__init__(generator, info, device, path)
        self.scale = int(info["scale"])

    def check_scale(self, scale: int | None) -> None:
        if scale is not None and int(scale) != self.scale:
            raise GancvError(f"this model was trained for x{self.scale}, not x{scale}; drop --scale or train one with "
                             f"restoration.scale={scale}")

    @torch.no_grad()
    def upscale(self, images: Any, *, scale: int | None = None, tile: int = SR_TILE, overlap: int = SR_OVERLAP,
                precision: str = "auto", ensemble: bool = False, note: Note | None = None) -> Any:
        """One image (PIL, numpy or uint8 (C, H, W)) -> uint8 (C, sH, sW); a list or a (N, C, H, W)
        tensor -> the same kind of collection. ``precision``: auto (bf16 where the device has bf16
        matrix units, else fp32), fp32 or bf16 — see ``TranslationModel.translate``. ``ensemble``:
        geometric self-ensemble (EDSR+, Lim et al. 2017): the mean of the network's outputs for the
        eight flips/rotations of the input, mapped back; 8x the compute for a fraction of a dB."""
        self.check_scale(scale)
        dtype = inference_dtype(precision, self.device)
        kw = dict(tile=tile, overlap=overlap, precision=precision, ensemble=ensemble, note=note)
        if isinstance(images, torch.Tensor) and images.dim() == 4:
            return torch.stack([self.upscale(im, **kw) for im in images])  # type: ignore[arg-type]
        if isinstance(images, (list, tuple)):
            return [self.upscale(im, **kw) for im in images]  # type: ignore[arg-type]
        x = to_chw_uint8(images, self.channels, note=note)
        h, w = x.shape[-2:]
        if min(h, w) < MIN_SR_SIDE:
            raise GancvError(f"image is {w}x{h}: smaller than the smallest tile this model upscales "
                             f"({MIN_SR_SIDE}x{MIN_SR_SIDE} px); use a larger image")
        net = inference_copy(self.generator, dtype, self._fast)

        def run(t: torch.Tensor) -> torch.Tensor:
            return dihedral_mean(lambda v: run_inference(net, dtype, v), t) if ensemble else run_inference(net, dtype, t)

        out = tiled_apply(run, _to_float(x[None]), tile=tile, overlap=overlap, scale=self.scale, device=self.device)
        return _to_uint8(out[0])


def dihedral_mean(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Mean of ``fn`` over the 8 flips/rotations of (N, C, H, W) ``x``, each output mapped back.

    Exact symmetry of the task (a rotated low-resolution image has the rotated high-resolution
    one as its answer), so averaging cancels part of the network's orientation-dependent error."""
    total = None
    for k in range(4):
        for flip in (False, True):
            v = x.rot90(k, (-2, -1))
            v = v.flip(-1) if flip else v
            y = fn(v).float()
            y = (y.flip(-1) if flip else y).rot90(-k, (-2, -1))
            total = y if total is None else total + y
    return total / 8


class InpaintingModel(_RestorationModel):
    """A trained inpainting generator: ``inpaint(image, mask)`` fills the white part of ``mask``."""

    task = "inpainting"
    capabilities: frozenset[str] = frozenset({"inpaint"})

    def __init__(self, generator: nn.Module, info: dict[str, Any], device: torch.device, path: Path | None = None):
        super().__init__(generator, info, device, path)
        self.multiple = int(info.get("multiple", 4))
        self.min_side = 4 * self.multiple  # the encoder's 1/4-resolution features must be at least 4x4

    def binary_mask(self, mask: Any, size: tuple[int, int], note: Note | None = None) -> torch.Tensor:
        """Any mask image -> bool (1, H, W); white (>= 128) = fill. Non-binary masks are thresholded."""
        m = to_chw_uint8(mask if not isinstance(mask, torch.Tensor) or mask.dtype == torch.uint8
                         else (mask.float() * 255).round().clamp(0, 255).to(torch.uint8), 1, "mask")
        if tuple(m.shape[-2:]) != tuple(size):
            raise GancvError(f"mask is {m.shape[-1]}x{m.shape[-2]} but the image is {size[1]}x{size[0]}; "
                             "give a mask of the same size (white = fill)")
        levels = torch.unique(m)
        if not set(levels.tolist()) <= {0, 255}:
            if note:
                note(f"mask is not binary ({len(levels)} grey levels); thresholded at 128: white (>= 128) = fill")
        binary = m >= 128
        if not binary.any():
            raise GancvError("mask has no white pixels: there is nothing to fill (white = fill, black = keep)")
        if binary.all():
            raise GancvError("mask is all white: no known pixels to fill from (white = fill, black = keep)")
        return binary

    @torch.no_grad()
    def inpaint(self, image: Any, mask: Any, *, tile: int = INPAINT_TILE, overlap: int = INPAINT_OVERLAP,
                precision: str = "auto", note: Note | None = None) -> torch.Tensor:
        """Fill the hole; returns uint8 (C, H, W) whose pixels outside the hole equal the input's exactly.

        Large images are tiled like ``upscale``, and only tiles that touch the hole are run.
        ``precision``: auto, fp32 or bf16 — see ``TranslationModel.translate``."""
        dtype = inference_dtype(precision, self.device)
        x = to_chw_uint8(image, self.channels, note=note)
        h, w = x.shape[-2:]
        if min(h, w) < self.min_side:
            raise GancvError(f"image is {w}x{h}: smaller than one {self.min_side}x{self.min_side} tile of this "
                             "inpainting network; use a larger image")
        m = self.binary_mask(mask, (h, w), note)
        net = inference_copy(self.generator, dtype, self._fast)
        c = self.channels
        # Image and mask travel as one tensor so each tile sees both; the reflect padding to the
        # network's multiple turns hole pixels at the border into hole pixels, which is harmless.
        both = torch.cat([_to_float(x[None]), m[None].float()], 1)
        pred = tiled_apply(lambda t: run_inference(net, dtype, t[:, :c], t[:, c:]), both, tile=tile,
                           overlap=overlap, multiple=self.multiple, device=self.device, needed=m[0])[0]
        # Composite in uint8: known pixels are copied, never round-tripped through floats.
        return torch.where(m, _to_uint8(pred), x)
