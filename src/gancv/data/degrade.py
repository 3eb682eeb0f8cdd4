"""Training inputs for restoration, made on the fly from clean images.

* :func:`degrade`: high-resolution -> low-resolution (optional Gaussian blur, antialiased bicubic
  downscale, optional Gaussian noise and JPEG), the classic SR degradation plus the "real-world"
  ones of Real-ESRGAN's first order;
* :func:`random_masks`: free-form strokes (DeepFill v2's generator) and boxes, 1 = hole.

All randomness comes from a ``torch.Generator`` so a training run is reproducible and resumable.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from ..errors import GancvError


def downscale(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Antialiased bicubic downscale of (N, C, H, W) [-1, 1] images (Pillow's filter, as in Set5/DIV2K)."""
    h, w = x.shape[-2:]
    if h % scale or w % scale:
        raise GancvError(f"image size {h}x{w} is not divisible by scale {scale}; use a crop that is")
    return F.interpolate(x, size=(h // scale, w // scale), mode="bicubic", antialias=True, align_corners=False).clamp(-1, 1)


def _uniform(n: int, lo: float, hi: float, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g, device=g.device).to(device)


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-image Gaussian blur with its own sigma (a depthwise conv with per-item kernels)."""
    n, c, h, w = x.shape
    radius = max(1, int(math.ceil(3 * float(sigma.max()))))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k1 = torch.exp(-(t[None, :] ** 2) / (2 * sigma[:, None].to(x.dtype) ** 2))
    k1 = k1 / k1.sum(1, keepdim=True)
    k2 = (k1[:, :, None] * k1[:, None, :]).repeat_interleave(c, 0)[:, None]  # (n*c, 1, k, k)
    pad = min(radius, h - 1, w - 1)
    xp = F.pad(x.reshape(1, n * c, h, w), (pad, pad, pad, pad), mode="reflect")
    if pad < radius:
        xp = F.pad(xp, [radius - pad] * 4, mode="replicate")
    return F.conv2d(xp, k2, groups=n * c).reshape(n, c, h, w)


def _jpeg(x: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    from torchvision.io import decode_jpeg, encode_jpeg

    u8 = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()
    out = [decode_jpeg(encode_jpeg(img, quality=int(q))) for img, q in zip(u8, quality.tolist())]
    return torch.stack(out).to(x.device, torch.float32) / 127.5 - 1


def degrade(hr: torch.Tensor, scale: int, g: torch.Generator, *, blur: float = 0.0, noise: float = 0.0,
            jpeg: int = 0) -> torch.Tensor:
    """(N, C, H, W) [-1, 1] -> (N, C, H/scale, W/scale): blur (sigma in [0.2, blur]), downscale,
    Gaussian noise (std in [0, noise] of 255), JPEG (quality in [jpeg, 95]); each drawn per image."""
    n = hr.shape[0]
    x = hr
    if blur > 0:
        x = _blur(x, _uniform(n, 0.2, max(blur, 0.2), g, hr.device))
    x = downscale(x, scale)
    if noise > 0:
        std = _uniform(n, 0.0, noise, g, hr.device).view(n, 1, 1, 1) * (2 / 255)
        x = (x + std * torch.randn(x.shape, generator=g, device=g.device).to(x.device)).clamp(-1, 1)
    if jpeg > 0:
        x = _jpeg(x, _uniform(n, float(jpeg), 95.0, g, hr.device).round())
    return x


# ---- masks -----------------------------------------------------------------------------------
MASK_KINDS = ("box", "free-form", "mixed")


def _free_form(rng: np.random.Generator, size: int) -> np.ndarray:
    # DeepFill v2's stroke generator, scaled to the image: a few random walks of thick lines.
    img = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(img)
    max_width = max(2, size // 8)
    for _ in range(int(rng.integers(1, 4))):
        x, y = float(rng.integers(0, size)), float(rng.integers(0, size))
        width = int(rng.integers(max(1, max_width // 2), max_width + 1))
        for _ in range(int(rng.integers(2, 6))):
            angle = rng.uniform(0, 2 * math.pi)
            length = rng.uniform(size / 8, size / 3)
            nx = float(np.clip(x + length * math.cos(angle), 0, size - 1))
            ny = float(np.clip(y + length * math.sin(angle), 0, size - 1))
            draw.line([(x, y), (nx, ny)], fill=255, width=width)
            r = width / 2
            draw.ellipse([nx - r, ny - r, nx + r, ny + r], fill=255)  # round joints, no gaps
            x, y = nx, ny
    return np.asarray(img) > 0


def _box(rng: np.random.Generator, size: int) -> np.ndarray:
    h, w = (int(rng.integers(size // 4, size // 2 + 1)) for _ in range(2))
    top, left = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
    m = np.zeros((size, size), bool)
    m[top : top + h, left : left + w] = True
    return m


def random_masks(n: int, size: int, kind: str, g: torch.Generator) -> torch.Tensor:
    """``n`` float masks (n, 1, size, size), 1 = hole; never empty, never the whole image."""
    if kind not in MASK_KINDS:
        raise GancvError(f"restoration.mask={kind!r} is not a mask kind; choose one of: {', '.join(MASK_KINDS)}")
    seed = int(torch.randint(0, 2**62, (1,), generator=g, device=g.device).item())
    rng = np.random.default_rng(seed)
    out = np.zeros((n, 1, size, size), np.float32)
    for i in range(n):
        pick = kind if kind != "mixed" else ("box" if rng.random() < 0.5 else "free-form")
        m = _box(rng, size) if pick == "box" else _free_form(rng, size)
        if not m.any():
            m = _box(rng, size)
        out[i, 0] = m
    return torch.from_numpy(out)
