"""Full-reference image metrics (output vs. ground truth): PSNR, SSIM and LPIPS via torchmetrics,
and PSNR/SSIM inside a mask (inpainting holes, as the restoration literature reports them).

LPIPS (Zhang et al. 2018) needs two sets of weights: the small linear heads, which torchmetrics
ships inside its wheel, and an ImageNet backbone (AlexNet by default), which torchvision would
download. Nothing here downloads: LPIPS is computed only when the backbone file is already in
torchvision's cache (``$TORCH_HOME/hub/checkpoints``); otherwise :func:`lpips_status` says which
file to place where, and callers report LPIPS as unavailable instead of guessing.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch

from ..errors import GancvError

_BACKBONES = {"alex": "AlexNet_Weights", "squeeze": "SqueezeNet1_1_Weights", "vgg": "VGG16_Weights"}


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] or float [-1, 1] (N, C, H, W) -> float [0, 1]."""
    if images.dtype == torch.uint8:
        return images.float() / 255.0
    return (images.float().clamp(-1, 1) + 1) / 2


def _pair(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if pred.shape != target.shape or pred.dim() != 4:
        raise GancvError(f"metrics need two (N, C, H, W) batches of the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    return to_unit(pred), to_unit(target)


def psnr(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Mean over images of the per-image PSNR in dB (pixel range [0, 1])."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    p, t = _pair(pred, target)
    per_image = peak_signal_noise_ratio(p, t, data_range=1.0, reduction="none", dim=(1, 2, 3))
    return float(per_image.clamp(max=100.0).mean())  # identical images would be +inf


def ssim(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Mean SSIM (Gaussian window 11, sigma 1.5; smaller images use a window that fits)."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    p, t = _pair(pred, target)
    k = min(11, (min(p.shape[-2:]) - 1) // 2 * 2 + 1)
    return float(structural_similarity_index_measure(p, t, data_range=1.0, kernel_size=k, sigma=1.5 * k / 11))


def masked_psnr(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean per-image PSNR over the pixels where ``mask`` (N, 1, H, W) is 1 (inpainting holes)."""
    p, t = _pair(pred, target)
    m = mask.float().expand_as(p)
    mse = ((p - t) ** 2 * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1)
    return float((10 * torch.log10(1.0 / mse.clamp_min(1e-10))).mean())


def masked_ssim(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean of the SSIM map over the hole pixels."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    p, t = _pair(pred, target)
    _, full = structural_similarity_index_measure(p, t, data_range=1.0, return_full_image=True)
    m = mask.float().expand_as(full)
    return float(((full * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1)).mean())


def lpips_weights_path(net: str = "alex") -> Path:
    """Where torchvision looks for the LPIPS backbone weights (its hub cache)."""
    import torchvision

    if net not in _BACKBONES:
        raise GancvError(f"LPIPS backbone {net!r} is not one of {', '.join(_BACKBONES)}")
    url = getattr(torchvision.models, _BACKBONES[net]).DEFAULT.url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def lpips_status(net: str = "alex") -> tuple[bool, str]:
    """(available, reason): LPIPS can run offline only if its backbone weights are cached."""
    path = lpips_weights_path(net)
    if path.is_file():
        return True, f"backbone weights found at {path}"
    return False, (f"LPIPS needs the ImageNet {net} backbone weights, which gancv never downloads; "
                   f"place {path.name} (from the torchvision model zoo) at {path} to enable it")


@lru_cache(maxsize=2)
def _lpips_model(net: str, weights: str):  # type: ignore[no-untyped-def]
    # ``weights`` is part of the cache key: another $TORCH_HOME means another backbone file.
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    try:
        return LearnedPerceptualImagePatchSimilarity(net_type=net, normalize=True).eval()
    except (RuntimeError, OSError, EOFError, ValueError, KeyError) as exc:
        # torchvision loads the cached file with weights_only=True; a damaged or foreign file lands here
        raise GancvError(f"{weights}: cannot be loaded as the LPIPS {net} backbone ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:120]}); replace it with {Path(weights).name} from the "
                         "torchvision model zoo") from None


def lpips_network(net: str = "alex") -> torch.nn.Module:
    """The differentiable LPIPS network (frozen, eval mode): ``net(a, b)`` -> (N, 1, 1, 1) distances
    for 3-channel images in [-1, 1]. Raises GancvError naming the file to place when it is missing."""
    ok, reason = lpips_status(net)
    if not ok:
        raise GancvError(reason)
    return _lpips_model(net, str(lpips_weights_path(net))).net


@torch.no_grad()
def lpips(pred: torch.Tensor, target: torch.Tensor, net: str = "alex", batch_size: int = 64) -> float | None:
    """Mean LPIPS distance (lower is closer), or None when the backbone weights are not cached."""
    ok, _ = lpips_status(net)
    if not ok:
        return None
    p, t = _pair(pred, target)
    if p.shape[1] == 1:
        p, t = p.expand(-1, 3, -1, -1), t.expand(-1, 3, -1, -1)
    model = _lpips_model(net, str(lpips_weights_path(net)))
    total = 0.0
    for i in range(0, len(p), batch_size):
        model.reset()
        model.update(p[i : i + batch_size], t[i : i + batch_size])
        total += float(model.compute()) * len(p[i : i + batch_size])
    return total / len(p)


def score(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float | None]:
    """PSNR, SSIM and LPIPS (None when unavailable) of ``pred`` against ``target``."""
    return {"psnr": round(psnr(pred, target), 3), "ssim": round(ssim(pred, target), 4),
            "lpips": (None if (v := lpips(pred, target)) is None else round(v, 4))}
