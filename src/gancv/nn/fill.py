"""Classical hole fills that an inpainting network refines (``GatedInpaintNet(prefill=...)``).

* ``diffusion``: the harmonic (Laplace) fill: every hole pixel is the average of its four
  neighbours, known pixels fixed (Bertalmio-style smooth continuation). Solved by multigrid:
  mask-weighted averages pull the known pixels down a pyramid until no hole is left, the coarse
  solution is upsampled as the start, and a few Jacobi sweeps per level relax it. Pure torch,
  so it runs on any device and inside tiling; on held-out photo crops it scores above OpenCV's
  Telea and Navier-Stokes in the hole.
* ``biharmonic``: towards the thin-plate fill (Laplacian of the image small everywhere): the
  hole continues the known gradients instead of flattening them. Conjugate gradients on the
  hole pixels, started from the harmonic fill; a fixed ``CG_STEPS`` keeps the cost bounded on
  large holes (where it stops between harmonic and biharmonic). Also pure torch.
* ``telea``: OpenCV's Telea fast marching (CPU, per image, through uint8).

Both return the image with the hole filled and the known pixels untouched; gradients are not
needed (the fill is an input, computed from data only).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import GancvError

PREFILLS = ("none", "diffusion", "biharmonic", "telea")
JACOBI_SWEEPS = 16  # per pyramid level: within 0.06 dB of the converged fill on 48 px photo crops
CG_STEPS = 50  # from the harmonic start; on 48 px photo crops 10 steps already give most of the gain


def _jacobi(fill: torch.Tensor, known: torch.Tensor, hole: torch.Tensor, sweeps: int) -> torch.Tensor:
    c = fill.shape[1]
    kernel = fill.new_tensor([[0, 0.25, 0], [0.25, 0, 0.25], [0, 0.25, 0]]).expand(c, 1, 3, 3)
    for _ in range(sweeps):
        # replicate padding = zero-gradient (Neumann) boundary at the image border
        fill = known + hole * F.conv2d(F.pad(fill, (1, 1, 1, 1), mode="replicate"), kernel, groups=c)
    return fill


def _harmonic(x: torch.Tensor, hole: torch.Tensor, sweeps: int) -> torch.Tensor:
    keep = 1 - hole
    if not bool(hole.any()):
        return x
    if min(x.shape[-2:]) > 1:
        ws = F.avg_pool2d(keep, 2, ceil_mode=True)
        xs = F.avg_pool2d(x * keep, 2, ceil_mode=True) / ws.clamp_min(1e-8)
        coarse = _harmonic(xs, (ws <= 0).to(x.dtype), sweeps)
        start = x * keep + hole * F.interpolate(coarse, size=x.shape[-2:], mode="bilinear", align_corners=False)
    else:  # a 1-pixel side that is still all hole: start from the mean of what is known
        start = x * keep + hole * ((x * keep).sum((2, 3), keepdim=True) / keep.sum((2, 3), keepdim=True).clamp_min(1))
    return _jacobi(start, x * keep, hole, sweeps)


def diffusion_fill(image: torch.Tensor, mask: torch.Tensor, sweeps: int = JACOBI_SWEEPS) -> torch.Tensor:
    """(N, C, H, W) images, (N, 1, H, W) masks (1 = hole) -> images with a smooth harmonic fill."""
    out = _harmonic(image.float(), mask.float().expand_as(image).contiguous(), sweeps)
    return out.to(image.dtype)


def _laplacian(u: torch.Tensor) -> torch.Tensor:
    # -D^T D u with forward differences and no difference across the border: a symmetric operator
    # (what conjugate gradients needs) with a zero-gradient boundary.
    dx = u[..., :, 1:] - u[..., :, :-1]
    dy = u[..., 1:, :] - u[..., :-1, :]
    return F.pad(dx, (1, 0)) - F.pad(dx, (0, 1)) + F.pad(dy, (0, 0, 1, 0)) - F.pad(dy, (0, 0, 0, 1))


def biharmonic_fill(image: torch.Tensor, mask: torch.Tensor, steps: int = CG_STEPS) -> torch.Tensor:
    """Minimise ||Laplacian(u)||^2 over the hole pixels of u (known pixels fixed) by ``steps`` of
    conjugate gradients per image and channel, from the harmonic fill."""
    hole = mask.float().expand_as(image).contiguous()
    u = _harmonic(image.float(), hole, JACOBI_SWEEPS)
    r = -hole * _laplacian(_laplacian(u))  # minus the energy's gradient, on the hole only
    p, rs = r, (r * r).sum((2, 3), keepdim=True)
    for _ in range(steps):
        ap = hole * _laplacian(_laplacian(p))
        alpha = rs / (p * ap).sum((2, 3), keepdim=True).clamp_min(1e-20)
        u, r = u + alpha * p, r - alpha * ap
        rs_next = (r * r).sum((2, 3), keepdim=True)
        p = r + rs_next / rs.clamp_min(1e-20) * p
        rs = rs_next
    # every update is masked to the hole, so known pixels are still exactly the input's
    return u.to(image.dtype)


def opencv_inpaint(images: torch.Tensor, masks: torch.Tensor, flag: int, radius: int = 3) -> torch.Tensor:
    """OpenCV's ``cv2.inpaint`` (``flag``: Telea or Navier-Stokes) on uint8 (N, C, H, W) CPU images,
    one image at a time; masks (N, 1, H, W), > 0 = hole. Returns uint8 (N, C, H, W)."""
    import cv2

    out = []
    for img, m in zip(images, masks):
        arr = np.ascontiguousarray(img.permute(1, 2, 0).numpy())
        filled = cv2.inpaint(arr, (m[0].numpy() > 0).astype(np.uint8) * 255, radius, flag)
        out.append(torch.from_numpy(filled.reshape(arr.shape)).permute(2, 0, 1))  # 1 channel comes back 2-D
    return torch.stack(out)


def telea_fill(image: torch.Tensor, mask: torch.Tensor, radius: int = 3) -> torch.Tensor:
    """OpenCV Telea in uint8 on the CPU, per image; known pixels keep their exact input values."""
    import cv2

    u8 = ((image.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()
    holes = (mask.detach() > 0.5).cpu()
    filled = opencv_inpaint(u8, holes.to(torch.uint8), cv2.INPAINT_TELEA, radius)
    filled = filled.to(image.device, torch.float32) / 127.5 - 1
    return torch.where(holes.to(image.device), filled, image.float()).to(image.dtype)


FILLS = {"diffusion": diffusion_fill, "biharmonic": biharmonic_fill}
MARGIN = 4  # the biharmonic energy couples a hole pixel to known pixels up to 2 px away


def prefill(kind: str, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``image`` with the hole (``mask`` = 1) filled by ``kind``; "none" zeroes the hole."""
    if kind == "none":
        return image * (1 - mask)  # the hole zeroed: the network cannot see (or copy) what it must fill
    if kind == "telea":
        return telea_fill(image, mask)
    if kind not in FILLS:
        raise GancvError(f"prefill={kind!r}: choose one of {', '.join(PREFILLS)}")
    # Solve only on the holes' bounding box (plus a margin of known pixels): on a big image with
    # a small hole this is most of the saving, and the solution is the same.
    rows = torch.nonzero(mask.amax((0, 1, 3)) > 0).flatten()
    cols = torch.nonzero(mask.amax((0, 1, 2)) > 0).flatten()
    if len(rows) == 0:
        return image
    h, w = image.shape[-2:]
    top, bottom = max(int(rows[0]) - MARGIN, 0), min(int(rows[-1]) + MARGIN + 1, h)
    left, right = max(int(cols[0]) - MARGIN, 0), min(int(cols[-1]) + MARGIN + 1, w)
    window = (..., slice(top, bottom), slice(left, right))
    out = image.clone()
    out[window] = FILLS[kind](image[window], mask[window])
    return out
