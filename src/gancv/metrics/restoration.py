"""Full-reference image quality: PSNR, SSIM (torchmetrics) and LPIPS when it can run offline.

Images are uint8 (N, C, H, W) or float in [0, 1]; PSNR/SSIM use data range 1. Masked variants
score only the pixels inside a hole (inpainting), as the restoration literature reports them.
"""
from __future__ import annotations

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


def psnr(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Mean per-image PSNR in dB (averaging dB per image, as SR papers do)."""
    p, t = _unit(pred), _unit(target)
    return float(peak_signal_noise_ratio(p, t, data_range=1.0, reduction="none", dim=(1, 2, 3)).mean())


def ssim(pred: torch.Tensor, target: torch.Tensor) -> float:
    return float(structural_similarity_index_measure(_unit(pred), _unit(target), data_range=1.0))


def masked_psnr(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean per-image PSNR over the pixels where ``mask`` (N, 1, H, W) is 1."""
    p, t, m = _unit(pred), _unit(target), mask.float().expand_as(_unit(pred))
    mse = ((p - t) ** 2 * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1)
    return float((10 * torch.log10(1.0 / mse.clamp_min(1e-10))).mean())


def masked_ssim(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean of the SSIM map over the hole pixels."""
    p, t = _unit(pred), _unit(target)
    _, full = structural_similarity_index_measure(p, t, data_range=1.0, return_full_image=True)
    m = mask.float().expand_as(full)
    return float(((full * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1)).mean())


def lpips_scorer() -> tuple[object | None, str]:
    """``(scorer, "")`` when LPIPS can run offline, else ``(None, reason)``.

    LPIPS needs the ``lpips`` package's linear-layer weights *and* ImageNet backbone weights
    (AlexNet/VGG/SqueezeNet from torchvision); torchmetrics downloads the latter on first use.
    We only build it when the backbone is already in torch hub's cache, so nothing is fetched.
    """
    import importlib.util
    from pathlib import Path

    if importlib.util.find_spec("lpips") is None:
        return None, "LPIPS needs the `lpips` package (pip install lpips) plus AlexNet ImageNet weights; not installed"
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    if not any(cache.glob("alexnet-*.pth")):
        return None, f"LPIPS needs torchvision's AlexNet weights in {cache} (not downloaded offline)"
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    return LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True), ""


def lpips(scorer: object, pred: torch.Tensor, target: torch.Tensor) -> float:
    p, t = _unit(pred), _unit(target)
    if p.shape[1] == 1:
        p, t = p.expand(-1, 3, -1, -1), t.expand(-1, 3, -1, -1)
    return float(scorer(p, t))  # type: ignore[operator]
