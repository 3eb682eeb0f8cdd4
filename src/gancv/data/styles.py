"""Fixed, documented style transforms: ground truth for the offline translation benchmark.

Each style maps a batch of real photo crops (uint8 RGB ``(N, 3, H, W)``) to a pair of domains
``(A, B)`` of the same shape, so a translator's output on held-out A can be scored against the
true B. The transforms are deterministic (no randomness, no learned parts):

* ``cartoon``: A = photo; B = colours posterised to 4 levels per channel (bin centres 32, 96,
  160, 224) with black Canny edges (OpenCV, thresholds 100/200 on the luma) drawn over them.
* ``gray``: A = photo; B = its ITU-R 601 luma, replicated to 3 channels.
* ``colorize``: A = the luma (3 channels), B = the photo: the ill-posed inverse of ``gray``.
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np
import torch

from ..registry import Registry

StyleFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
STYLES = Registry("style")

POSTER_LEVELS = 4
CANNY_THRESHOLDS = (100, 200)


def luma3(x: torch.Tensor) -> torch.Tensor:
    """uint8 RGB -> uint8 luma replicated to 3 channels (same shape)."""
    from torchvision.transforms.v2 import functional as F  # lazy: importing torchvision costs seconds
    return F.rgb_to_grayscale(x, num_output_channels=3)


def cartoonise(x: torch.Tensor) -> torch.Tensor:
    """uint8 RGB (N, 3, H, W) -> posterised colours with black edges (same shape)."""
    from torchvision.transforms.v2 import functional as F  # lazy: importing torchvision costs seconds
    step = 256 // POSTER_LEVELS
    poster = (x // step) * step + step // 2
    gray = F.rgb_to_grayscale(x).squeeze(1).numpy()
    edges = np.stack([cv2.Canny(np.ascontiguousarray(g), *CANNY_THRESHOLDS) for g in gray]) > 0
    return poster.masked_fill(torch.from_numpy(edges)[:, None], 0)


@STYLES.register("cartoon", description="A = photo, B = 4-level posterised colours with black Canny edges")
def cartoon_pair(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x, cartoonise(x)


@STYLES.register("gray", description="A = colour photo, B = its grayscale (luma, 3 channels)")
def gray_pair(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x, luma3(x)


@STYLES.register("colorize", description="A = grayscale photo (3 channels), B = the colour photo")
def colorize_pair(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return luma3(x), x


def apply_style(name: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    fn: StyleFn = STYLES.get(name)
    return fn(x)
