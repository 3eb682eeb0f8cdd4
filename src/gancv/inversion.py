"""GAN inversion: find the latent whose image reconstructs a given real image.

The optimisation follows StyleGAN2's projector: start at the mean w, Adam with a short lr
warm-up and cosine ramp-down, Gaussian noise on w early on so the search does not settle in
the first basin it meets, and fixed generator noise. ``w_plus`` optimises one w per layer (far
more expressive, the usual choice for editing real images); otherwise a single w shared by all layers.

Losses (``loss=``): ``l2`` (pixels), ``lpips`` (LPIPS with the AlexNet backbone, as StyleGAN2's
projector uses a perceptual distance) or ``lpips+l2`` (their sum, the usual inversion objective);
``auto`` picks ``lpips+l2`` when the backbone weights are in torchvision's cache and ``l2``
otherwise. gancv never downloads those weights: asking for LPIPS without them is a GancvError
naming the file to place. AlexNet needs >= 31 px inputs (an 11x11/4 conv and two 3x3/2 max-pools
before its deeper layers), so images are resized to LPIPS_SIZE for the loss: small models' images
upsampled, large ones downsampled as StyleGAN2 downsamples 1024 px to 256 px.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .errors import GancvError
from .models.base import eval_mode


LOSSES = ("auto", "l2", "lpips", "lpips+l2")
LPIPS_NET = "alex"
LPIPS_MIN, LPIPS_MAX = 64, 256  # loss resolution bounds: 64 px gives AlexNet's last layers a 3x3 map


@dataclass
class Projection:
    ws: torch.Tensor  # (num_ws, w_dim) float32 on the CPU
    image: torch.Tensor  # uint8 (C, H, W) reconstruction
    target: torch.Tensor  # uint8 (C, H, W)
    psnr: float  # dB, on [0, 1] pixel values
    losses: list[float] = field(default_factory=list)  # the optimised loss per step
    frames: list[torch.Tensor] = field(default_factory=list)  # uint8 reconstructions over the optimisation
    loss: str = "l2"  # the loss actually optimised ("auto" resolved)
    l2: float = 0.0  # final pixel MSE on [-1, 1] values
    lpips: float | None = None  # final LPIPS distance (at LPIPS resolution) when the loss used it


def resolve_loss(loss: str) -> str:
    """``auto`` -> ``lpips+l2`` when the LPIPS backbone is cached, else ``l2``; LPIPS without it -> GancvError."""
    from .metrics.reference import lpips_status

    if loss not in LOSSES:
        raise GancvError(f"projection loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    available, reason = lpips_status(LPIPS_NET)
    if loss == "auto":
        return "lpips+l2" if available else "l2"
    if "lpips" in loss and not available:
        raise GancvError(f"--loss {loss}: {reason}; or use --loss l2")
    return loss


def lpips_size(size: int) -> int:
    return min(max(size, LPIPS_MIN), LPIPS_MAX)


def _for_lpips(x: torch.Tensor, size: int) -> torch.Tensor:
    """[-1, 1] (N, C, H, W) -> 3 channels at ``size`` px, the input the LPIPS backbone expects."""
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-1] == size:
        return x
    if x.shape[-1] > size:  # area average: no aliasing when shrinking
        return F.interpolate(x, size=(size, size), mode="area")
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB between uint8 images (peak 255)."""
    mse = (a.float() - b.float()).square().mean().item()
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


def load_target(path: str | Path, shape: tuple[int, ...]) -> tuple[torch.Tensor, list[str]]:
    """An image file -> uint8 (C, H, W) matching ``shape``, plus notes on what was converted."""
    from .data.images import BadImage, decode_image
    from .data.transforms import fit_square_pil, pil_to_tensor

    c, h, _ = shape
    try:
        img, notes = decode_image(path)
    except BadImage as exc:
        raise GancvError(f"{path}: {exc}; pass a PNG or JPEG image") from None
    notes = list(notes)
    if img.size != (h, h):
        notes.append(f"resized (shorter side) and centre-cropped from {img.size[0]}x{img.size[1]} to {h}x{h}, the model's size")
    if (img.mode == "L") != (c == 1):
        notes.append(f"converted {img.mode} to {'grayscale' if c == 1 else 'RGB'} to match the model's {c} channel(s)")
    return pil_to_tensor(fit_square_pil(img, h), c), notes


@torch.no_grad()
def w_stats(G: nn.Module, samples: int = 4096, seed: int = 0) -> tuple[torch.Tensor, float]:
    """Mean w and the root-mean-square distance to it, from the mapping network itself."""
    device = G.w_avg.device
    z = torch.randn(samples, G.z_dim, generator=torch.Generator().manual_seed(seed)).to(device)
    labels = torch.arange(samples, device=device) % G.num_classes if G.num_classes else None
    w = G.mapping(z, labels)
    mean = w.mean(0)
    return mean, float((w - mean).square().sum(1).mean().sqrt())


def project(G: nn.Module, target: torch.Tensor, steps: int = 300, w_plus: bool = True, lr: float = 0.05,
            seed: int = 0, frames: int = 24, noise_ramp: float = 0.75, initial_noise: float = 0.05,
            loss: str = "auto") -> Projection:
    """Optimise a latent so ``G.synthesis(ws)`` matches ``target`` (uint8 or [-1, 1] float (C, H, W)).

    ``loss``: ``auto`` (LPIPS+L2 when the LPIPS backbone is cached, else L2), ``l2``, ``lpips``
    or ``lpips+l2``; ``Projection.loss`` says which one ran."""
    if not hasattr(G, "synthesis"):
        raise GancvError(f"projection needs a StyleGAN generator (mapping network + synthesis); {type(G).__name__} has none")
    if steps < 1:
        raise GancvError(f"projection steps must be >= 1, got {steps}")
    device = G.w_avg.device
    if tuple(target.shape) != tuple(G.shape):
        raise GancvError(f"target of shape {tuple(target.shape)} does not match the model's {tuple(G.shape)}; "
                         "load it with gancv.inversion.load_target, which resizes it")
    loss = resolve_loss(loss)
    target_u8 = target if target.dtype == torch.uint8 else to_uint8(target)
    goal = (target_u8.float().to(device) / 127.5 - 1)[None]
    perceptual = None
    if "lpips" in loss:
        from .metrics.reference import lpips_network

        net, size = lpips_network(LPIPS_NET).to(device), lpips_size(goal.shape[-1])
        goal_lp = _for_lpips(goal, size)
        # The generator's output is not clamped: clamping would zero the gradient of saturated pixels.
        perceptual = lambda img: net(_for_lpips(img, size), goal_lp).mean()  # noqa: E731
    G.requires_grad_(False)
    w_mean, w_std = w_stats(G, seed=seed)
    shape = (1, G.num_ws, G.w_dim) if w_plus else (1, 1, G.w_dim)
    w = w_mean.reshape(1, 1, -1).expand(shape).clone().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=lr, betas=(0.9, 0.999))
    g = torch.Generator(device=device).manual_seed(seed)
    keep = set(torch.linspace(0, steps - 1, max(2, frames)).round().long().tolist())
    result = Projection(ws=torch.empty(0), image=torch.empty(0), target=target_u8.cpu(), psnr=0.0, loss=loss)
    with eval_mode(G):  # eval-mode layers (noise, BN) behave as when sampling
        for step in range(steps):
            t = step / steps
            # lr: 5% linear warm-up, cosine ramp-down over the last 25% (StyleGAN2's projector)
            ramp = min(1.0, (1 - t) / 0.25)
            ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
            for group in opt.param_groups:
                group["lr"] = lr * ramp * min(1.0, t / 0.05)
            sigma = w_std * initial_noise * max(0.0, 1 - t / noise_ramp) ** 2
            noisy = w + torch.randn(w.shape, device=device, generator=g) * sigma
            img = G.synthesis(noisy.expand(1, G.num_ws, G.w_dim), "const")
            value = F.mse_loss(img, goal) if loss != "lpips" else img.new_zeros(())
            if perceptual is not None:
                value = value + perceptual(img)  # lpips+l2: equal weights, as e4e/PTI's inversion losses
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
            result.losses.append(float(value.detach()))
            if step in keep:
                result.frames.append(to_uint8(img[0]))
        with torch.no_grad():
            ws = w.detach().expand(1, G.num_ws, G.w_dim)
            img = G.synthesis(ws, "const")
            final = to_uint8(img[0])
            result.l2 = float(F.mse_loss(img, goal))
            result.lpips = float(perceptual(img)) if perceptual is not None else None
    result.ws, result.image = ws[0].cpu().clone(), final
    result.frames.append(final)
    result.psnr = psnr(final, result.target)
    return result
