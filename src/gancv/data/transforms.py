"""Resizing and channel conversion shared by every image loader.

One rule everywhere: scale so the shorter side is ``size`` (antialiased bicubic), then
center-crop to ``size x size``. Batches of equal-sized tensors go through torchvision's
resize; single decoded files go through Pillow (same filter family, and Pillow never holds
a full-resolution batch in memory).
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageOps

# why: bounded working memory when resizing 60k-image sets (float copies of a chunk only).
_CHUNK = 2048


def fit_square_tensor(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize uint8 ``(N, C, H, W)`` so the shorter side is ``size``, then center-crop square."""
    from torchvision.transforms.v2 import functional as F  # lazy: importing torchvision costs seconds
    n, c, h, w = x.shape
    if h == w == size:
        return x
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    out = torch.empty((n, c, size, size), dtype=torch.uint8)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    for start in range(0, n, _CHUNK):
        chunk = x[start : start + _CHUNK]
        # why bicubic + antialias: upscaled 8x8 digits stay crisp, downscaled photos don't alias;
        # torchvision rounds and clamps the uint8 result, so bicubic overshoot cannot wrap around.
        resized = F.resize(chunk, [new_h, new_w], interpolation=F.InterpolationMode.BICUBIC, antialias=True)
        out[start : start + len(chunk)] = resized[:, :, top : top + size, left : left + size]
    return out


def set_channels_tensor(x: torch.Tensor, channels: int | None) -> torch.Tensor:
    """uint8 ``(N, C, H, W)`` with C in {1, 3} -> ``channels`` (None keeps C)."""
    from torchvision.transforms.v2 import functional as F  # lazy: importing torchvision costs seconds
    c = x.shape[1]
    if channels is None or channels == c:
        return x
    if c == 3 and channels == 1:
        return torch.cat([F.rgb_to_grayscale(x[i : i + _CHUNK]) for i in range(0, len(x), _CHUNK)])
    if c == 1 and channels == 3:
        return x.expand(-1, 3, -1, -1).contiguous()
    raise ValueError(f"cannot convert {c} channels to {channels}")


def fit_square_pil(img: Image.Image, size: int) -> Image.Image:
    """The Pillow twin of :func:`fit_square_tensor` for one decoded image."""
    if img.size == (size, size):
        return img
    return ImageOps.fit(img, (size, size), method=Image.Resampling.BICUBIC, centering=(0.5, 0.5))


def pil_to_tensor(img: Image.Image, channels: int) -> torch.Tensor:
    """An ``L``/``RGB`` image -> uint8 ``(channels, H, W)`` (grayscale via ITU-R 601 luma)."""
    want = "L" if channels == 1 else "RGB"
    if img.mode != want:
        img = img.convert(want)
    arr = np.array(img, dtype=np.uint8)  # a writable copy: torch refuses read-only buffers
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def native_channels(modes: list[str]) -> int:
    """1 when every image is grayscale, else 3 (a colour image must not lose its colour)."""
    gray = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
    return 1 if modes and all(m in gray for m in modes) else 3
