"""Trained models as users hold them: ``gancv.load(path)`` returns one of these."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..device import resolve_device
from ..errors import GancvError
from ..models import build
from ..training.checkpoint import load_weights


def resolve_model_dir(path: str | Path) -> Path:
    """A run directory (its ``model/`` export) or an exported model directory."""
    p = Path(path)
    if not p.exists():
        raise GancvError(f"{p} does not exist; pass a run directory (gancv train --out RUN) or an exported model directory")
    if p.is_file():
        raise GancvError(f"{p} is a file, not a run or model directory; pass the directory gancv train wrote")
    for candidate in (p, p / "model"):
        if (candidate / "config.json").is_file():
            return candidate
    raise GancvError(f"{p} is not a gancv run or model directory (no config.json or model/config.json); "
                     "train one with `gancv train` or wait for its first checkpoint")


def read_model_info(model_dir: Path) -> dict[str, Any]:
    try:
        info = json.loads((model_dir / "config.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GancvError(f"{model_dir / 'config.json'} is not valid JSON ({type(exc).__name__}); re-export the model") from None
    if not isinstance(info, dict) or "task" not in info:
        raise GancvError(f"{model_dir / 'config.json'} is not a gancv model config (no 'task'); re-export the model")
    return info


def _generator_seed() -> int:
    return int(torch.randint(0, 2**31 - 1, (1,)).item())


def check_interpolation(steps: int, rows: int, method: str) -> None:
    """The arguments every ``interpolate`` takes (z walks here, W walks in StyleGAN)."""
    if steps < 2 or rows < 1:
        raise GancvError(f"interpolate needs steps >= 2 and rows >= 1, got steps={steps}, rows={rows}")
    if method not in ("lerp", "slerp"):
        raise GancvError(f"interpolation method must be lerp or slerp, got {method!r}")


class GenerativeModel:
    """A trained generator: ``sample``, ``interpolate``; EMA weights when the run had them."""

    task = "generation"
    # Operations this class offers; subclasses add theirs (StyleGANModel: W-space edits).
    capabilities: frozenset[str] = frozenset({"sample", "interpolate"})

    def __init__(self, generator: nn.Module, info: dict[str, Any], device: torch.device, path: Path | None = None):
        self.generator = generator.to(device).eval().requires_grad_(False)
        self.info, self.device, self.path = info, device, path
        data = info["data"]
        self.kind: str = data["kind"]
        self.shape: tuple[int, ...] = tuple(data["shape"])
        self.num_classes: int = int(data.get("num_classes", 0))
        self.class_names: list[str] = list(data.get("class_names", []))
        self.z_dim: int = int(info["z_dim"])
        # The calibrated discriminator of a run trained with drs.enabled=true: rejection sampling.
        self.discriminator: nn.Module | None = None

    @classmethod
    def load(cls, model_dir: Path, info: dict[str, Any], device: torch.device) -> "GenerativeModel":
        G = build("generator", info["generator"])
        load_weights(G, model_dir / "generator.safetensors", device)
        model = cls(G, info, device, model_dir)
        if isinstance(info.get("drs"), dict):
            D = build("discriminator", info["drs"]["discriminator"])
            load_weights(D, model_dir / "discriminator.safetensors", device)
            model.discriminator = D.to(device).eval().requires_grad_(False)
        return model

    @property
    def has_drs(self) -> bool:
        """True when this model carries a calibrated D, so ``sample`` rejects by default (DRS)."""
        return self.discriminator is not None

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    def _labels(self, n: int, labels: int | Sequence[int] | torch.Tensor | None) -> torch.Tensor | None:
        if labels is None:
            # An even spread over classes, so a conditional model's sample shows all of them.
            return (torch.arange(n) % self.num_classes).to(self.device) if self.conditional else None
        if not self.conditional:
            raise GancvError("this model is unconditional: it cannot sample a class (drop --class)")
        t = torch.as_tensor([labels] * n if isinstance(labels, int) else labels, dtype=torch.long)
        if t.numel() != n:
            raise GancvError(f"got {t.numel()} labels for {n} samples")
        if t.min() < 0 or t.max() >= self.num_classes:
            raise GancvError(f"class {int(t.max() if t.max() >= self.num_classes else t.min())} is out of range; "
                             f"this model has classes 0..{self.num_classes - 1}")
        return t.to(self.device)

    def noise(self, n: int, seed: int | None = None, truncation: float | None = None) -> torch.Tensor:
        g = torch.Generator().manual_seed(_generator_seed() if seed is None else int(seed))
        return self._draw(n, g, truncation)

    def _draw(self, n: int, g: torch.Generator, truncation: float | None = None) -> torch.Tensor:
        z = torch.randn(n, self.z_dim, generator=g)
        if truncation is not None:
            if not truncation > 0:
                raise GancvError(f"truncation must be > 0, got {truncation}")
            # Truncation trick (BigGAN): resample components outside [-t, t]; smaller t = cleaner, less varied.
            for _ in range(100):
                bad = z.abs() > truncation
                if not bad.any():
                    break
                z[bad] = torch.randn(int(bad.sum()), generator=g)
            z = z.clamp(-truncation, truncation)
        return z.to(self.device)

    @torch.no_grad()
    def _raw(self, z: torch.Tensor, labels: torch.Tensor | None, batch_size: int = 256) -> torch.Tensor:
        """G's float output on the model's device, in batches."""
        outs = [self.generator(z[i : i + batch_size], None if labels is None else labels[i : i + batch_size]).float()
                for i in range(0, z.shape[0], batch_size)]
        return torch.cat(outs) if outs else torch.empty(0, *self.shape, device=self.device)

    def _output(self, out: torch.Tensor) -> torch.Tensor:
        out = out.cpu()
        if self.kind == "points":
            return out
        return ((out.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)

    @torch.no_grad()
    def generate(self, z: torch.Tensor, labels: torch.Tensor | None, batch_size: int = 256) -> torch.Tensor:
        return self._output(self._raw(z, labels, batch_size))

    def sample(self, n: int, labels: int | Sequence[int] | torch.Tensor | None = None, seed: int | None = None,
               truncation: float | None = None, drs: bool | None = None) -> torch.Tensor:
        """``n`` samples: uint8 (N, C, H, W) images, or float32 (N, 2) points for toy2d models.

        ``drs``: discriminator rejection sampling (Azadi et al. 2019) with the run's calibrated D;
        None = on exactly when the model carries one (trained with drs.enabled=true)."""
        if not isinstance(n, int) or n < 1:
            raise GancvError(f"number of samples must be a positive integer, got {n!r}")
        if drs and not self.has_drs:
            raise GancvError(f"{self.path or 'this model'} has no discriminator for rejection sampling (DRS): "
                             "train it with drs.enabled=true, or sample without --drs")
        lab = self._labels(n, labels)
        if not (self.has_drs if drs is None else drs):
            return self.generate(self.noise(n, seed, truncation), lab)
        return self.rejection_sample(n, lab, seed, truncation)[0]

    def rejection_sample(self, n: int, labels: torch.Tensor | None = None, seed: int | None = None,
                         truncation: float | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """DRS samples and the sampler's statistics ({acceptance, drawn}); ``labels`` already checked."""
        from .drs import RejectionSampler

        if self.discriminator is None:
            raise GancvError("this model has no discriminator for rejection sampling (DRS); train with drs.enabled=true")
        g = torch.Generator().manual_seed(_generator_seed() if seed is None else int(seed))
        sampler = RejectionSampler(self.discriminator, self.info["drs"], self._raw,
                                   lambda k, gen: self._draw(k, gen, truncation))
        out, stats = sampler.sample(n, labels, g, lambda k: self._labels(k, None))
        return self._output(out), stats

    def interpolate(self, steps: int = 8, rows: int = 4, seed: int | None = None,
                    labels: int | Sequence[int] | None = None, method: str | None = None) -> torch.Tensor:
        """``rows`` interpolations between random latents (``slerp``, the default, or ``lerp``),
        ``steps`` frames each: uint8 (rows*steps, C, H, W), row-major."""
        method = method or "slerp"
        check_interpolation(steps, rows, method)
        ends = self.noise(2 * rows, seed).view(rows, 2, self.z_dim)
        t = torch.linspace(0, 1, steps, device=self.device)
        if method == "lerp":
            z = (ends[:, :1] + (ends[:, 1:] - ends[:, :1]) * t[None, :, None]).reshape(rows * steps, self.z_dim)
        else:
            z = torch.stack([slerp(ends[r, 0], ends[r, 1], t) for r in range(rows)]).reshape(rows * steps, self.z_dim)
        lab = self._labels(rows, labels)
        lab = lab.repeat_interleave(steps) if lab is not None else None
        return self.generate(z, lab)

    # ---- capabilities: what this model can do, for the CLI's messages and the web app's tabs ----
    def require(self, capability: str) -> None:
        """Raise a GancvError saying why, unless this model has ``capability``."""
        if capability in self.capabilities:
            return
        if capability in W_SPACE:  # a generator without a mapping network has no W to act on
            name = self.info.get("generator", {}).get("name", "?")
            raise GancvError(f"{W_SPACE[capability]} needs a StyleGAN model (a mapping network and modulated convs); "
                             f"this {name!r} generator has none. Train one with e.g. --preset stylegan-faces")
        raise GancvError(f"this {self.task} model cannot {capability}")


# What each StyleGAN-only capability is called in messages.
W_SPACE = {"style_mix": "style mixing (--mix)", "directions": "latent directions",
           "project": "projection (GAN inversion into W)"}


def capabilities_of(model: Any) -> frozenset[str]:
    """The operations an inference object offers (``capabilities``); the web app shows a tab per capability."""
    return frozenset(getattr(model, "capabilities", ()))


DEFAULT_TILE = 512  # input pixels per tile: large enough that overlap costs little, small enough for any memory
DEFAULT_OVERLAP = 32


def image_to_tensor(image: Any, channels: int) -> torch.Tensor:
    """A path, PIL image, HxW[xC] uint8 array or (C, H, W) tensor -> uint8 (channels, H, W).

    Files go through the same safe decoder as training data (bombs, truncation, odd modes);
    grayscale is replicated into RGB models and colour reduced to luma for gray ones.
    """
    import numpy as np
    from PIL import Image

    from ..data.images import BadImage, decode_image
    from ..data.transforms import pil_to_tensor

    if isinstance(image, (str, Path)):
        try:
            image, _ = decode_image(image)
        except BadImage as exc:
            raise GancvError(f"{image}: {exc}") from None
    if isinstance(image, Image.Image):
        from ..data.images import normalize_mode

        return pil_to_tensor(normalize_mode(image)[0], channels)
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.ascontiguousarray(image))
        image = image[None] if image.dim() == 2 else image.permute(2, 0, 1)
    if not isinstance(image, torch.Tensor) or image.dim() != 3 or image.shape[0] not in (1, 3):
        shape = tuple(image.shape) if hasattr(image, "shape") else type(image).__name__
        raise GancvError(f"cannot translate {shape}: give an image file, a PIL image or a (C, H, W) tensor with C = 1 or 3")
    if image.dtype != torch.uint8:
        image = ((image.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)  # [-1, 1] floats
    if image.shape[0] != channels:
        from ..data.transforms import set_channels_tensor

        image = set_channels_tensor(image[None], channels)[0]
    return image


class TranslationModel:
    """A trained image-to-image model (pix2pix: one direction; CycleGAN: a2b and b2a)."""

    capabilities: frozenset[str] = frozenset({"translate"})

    def __init__(self, generators: dict[str, nn.Module], info: dict[str, Any], device: torch.device,
                 path: Path | None = None):
        self.generators = {d: G.to(device).eval().requires_grad_(False) for d, G in generators.items()}
        self.info, self.device, self.path = info, device, path
        self._fast: dict[Any, nn.Module] = {}  # inference copies per (generator, dtype)
        self.task: str = info["task"]
        self.image_size = int(info["data"]["image_size"])

    @classmethod
    def load(cls, model_dir: Path, info: dict[str, Any], device: torch.device) -> "TranslationModel":
        generators = {}
        for direction, config in info.get("generators", {}).items():
            G = build("generator", config)
            load_weights(G, model_dir / f"generator_{direction}.safetensors", device)
            generators[direction] = G
        if not generators:
            raise GancvError(f"{model_dir / 'config.json'} lists no generators; re-export the model")
        return cls(generators, info, device, model_dir)

    @property
    def directions(self) -> list[str]:
        return sorted(self.generators)

    def _generator(self, direction: str | None) -> nn.Module:
        direction = direction or ("a2b" if "a2b" in self.generators else self.directions[0])
        if direction not in self.generators:
            raise GancvError(f"this {self.task} model translates {' and '.join(self.directions)} only, "
                             f"not {direction!r}; use --direction {self.directions[0]}")
        return self.generators[direction]

    @torch.no_grad()
    def translate(self, images: Any, direction: str | None = None, tile: int = DEFAULT_TILE,
                  overlap: int = DEFAULT_OVERLAP, precision: str = "auto") -> Any:
        """Translate images of any size; the output has each input's size.

        ``images``: a path, PIL image or uint8/[-1, 1] (C, H, W) tensor -> uint8 (C, H, W); an (N, C, H, W)
        tensor -> uint8 (N, C, H, W); a list of any of these -> a list. Large images are cut into
        overlapping ``tile``-pixel tiles with seamless blending, so memory stays bounded.
        ``precision``: ``auto`` runs the network in bfloat16 where the device has bf16 matrix units
        (AMX CPUs, recent GPUs: about 3x faster on CPU, outputs within about one grey level of
        fp32) and in fp32 elsewhere; ``fp32`` and ``bf16`` force one.
        """
        from ..tiling import tiled_apply
        from ..training.precision import inference_copy, inference_dtype, run_inference

        dtype = inference_dtype(precision, self.device)
        G = self._generator(direction)
        if isinstance(images, (list, tuple)):
            return [self.translate(im, direction, tile, overlap, precision) for im in images]
        if isinstance(images, torch.Tensor) and images.dim() == 4:
            if not len(images):
                return images
            return torch.stack([self.translate(im, direction, tile, overlap, precision) for im in images])
        x = image_to_tensor(images, G.in_channels)  # type: ignore[arg-type]
        x = x[None].float().div_(127.5).sub_(1.0)
        net = inference_copy(G, dtype, self._fast)
        out = tiled_apply(lambda t: run_inference(net, dtype, t), x, tile=tile, overlap=overlap,
                          multiple=G.multiple, device=self.device)  # type: ignore[arg-type]
        return ((out[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation: keeps latents at the norm the generator was trained on (Gaussian shell)."""
    an, bn = a / a.norm(), b / b.norm()
    omega = torch.acos((an * bn).sum().clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    t = t[:, None]
    return (torch.sin((1 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b


def load(path: str | Path, device: str = "auto") -> Any:
    """Load a run or model directory; the object's type follows the task it was trained for."""
    from . import TASKS

    from ..provenance import model_id_of_dir

    model_dir = resolve_model_dir(path)
    info = read_model_info(model_dir)
    task = TASKS.get(info["task"])
    model = task.inference.load(model_dir, info, resolve_device(device))
    # Every inference object carries the id its outputs are watermarked with (gancv detect).
    if getattr(model, "model_id", None) is None:
        model.model_id = model_id_of_dir(model_dir)
    return model
