"""What `gancv serve` serves: loaded models by name, live run directories, checked uploads.

No Gradio here, so all of it is testable (and fast) without a server.
"""
from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..errors import GancvError

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_UPLOAD_PIXELS = 4096 * 4096
# Web outputs are enlarged to at least this side (nearest neighbour, no blur): 8-32 px samples
# are unreadable in a browser, and 256 px is the watermark's minimum (gancv.provenance).
MIN_DISPLAY_SIDE = 256

# Image-to-image capabilities: tab title -> capability, which is also the inference object's method.
# Contract: method(images uint8 (N, C, H, W)) -> uint8 (N, C, H', W'). (Inpainting needs a drawn
# mask as well and has its own tab.)
IMAGE_TO_IMAGE = {"Translate": "translate", "Upscale": "upscale"}


@dataclass
class Served:
    name: str
    path: Path
    model: Any | None  # None: a run with no exported model yet (monitor only)
    run_dir: Path | None  # a run directory with metrics.jsonl to monitor

    @property
    def task(self) -> str:
        return getattr(self.model, "task", "") if self.model is not None else ""

    @property
    def model_id(self) -> str | None:
        return getattr(self.model, "model_id", None)

    def can(self, capability: str) -> bool:
        """The model offers this operation: it is in the inference object's ``capabilities``."""
        from ..tasks.inference import capabilities_of

        return self.model is not None and capability in capabilities_of(self.model)

    @property
    def generates_images(self) -> bool:
        return self.can("sample") and getattr(self.model, "kind", "image") == "image"


@dataclass
class Catalog:
    models: dict[str, Served] = field(default_factory=dict)

    def with_capability(self, capability: str) -> list[str]:
        return [n for n, s in self.models.items() if s.can(capability)]

    def generators(self) -> list[str]:
        return [n for n, s in self.models.items() if s.generates_images]

    def runs(self) -> list[str]:
        return [n for n, s in self.models.items() if s.run_dir is not None]

    def get(self, name: str | None) -> Served:
        if not name or name not in self.models:
            raise GancvError(f"no model named {name!r} is loaded; pick one of {', '.join(self.models) or 'none'}")
        return self.models[name]


def load_catalog(paths: list[Path], device: str = "cpu") -> Catalog:
    """Load every RUN given to `gancv serve`; names are the directory names and must be unique."""
    from ..tasks.inference import load

    if not paths:
        raise GancvError("gancv serve needs at least one run or model directory")
    catalog = Catalog()
    seen: dict[str, Path] = {}
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            raise GancvError(f"{path} is not a directory; pass run directories (gancv train --out RUN) or model directories")
        name = path.resolve().name
        if path.resolve().name == "model" and path.resolve().parent.name:
            name = path.resolve().parent.name  # RUN/model is called after its run
        if name in seen:
            raise GancvError(f"two models are named {name!r} ({seen[name]} and {path}); the web app names models by "
                             "directory, so rename or copy one of them")
        seen[name] = path
        run_dir = path if (path / "metrics.jsonl").is_file() else None
        has_model = (path / "config.json").is_file() or (path / "model" / "config.json").is_file()
        if not has_model and run_dir is None:
            raise GancvError(f"{path} has neither an exported model (config.json) nor metrics.jsonl to monitor")
        model = load(path, device=device) if has_model else None
        catalog.models[name] = Served(name, path, model, run_dir)
    return catalog


# ---- uploads ----------------------------------------------------------------------------------
def read_upload(path: str | Path | None) -> Image.Image:
    """An uploaded file as an L or RGB image, or a GancvError saying what is wrong with it."""
    if path is None:
        raise GancvError("upload an image first")
    path = Path(path)
    size = path.stat().st_size if path.is_file() else -1
    if size < 0:
        raise GancvError("the upload did not arrive; try again")
    if size > MAX_UPLOAD_BYTES:
        raise GancvError(f"{path.name} is {size / 1e6:.1f} MB; the limit is {MAX_UPLOAD_BYTES // 2**20} MB")
    previous = Image.MAX_IMAGE_PIXELS
    try:
        # Treat anything over the pixel limit as a decompression bomb: PIL raises before decoding.
        Image.MAX_IMAGE_PIXELS = MAX_UPLOAD_PIXELS // 2
        with Image.open(path) as im:
            if getattr(im, "n_frames", 1) > 1:
                raise GancvError(f"{path.name} is animated ({im.n_frames} frames); upload a single still image")
            if im.width * im.height > MAX_UPLOAD_PIXELS:
                raise GancvError(f"{path.name} is {im.width}x{im.height}; the limit is {MAX_UPLOAD_PIXELS:,} pixels")
            if im.mode == "CMYK":
                raise GancvError(f"{path.name} is CMYK (print colours); save it as RGB and upload again")
            if im.mode.startswith("I") or im.mode == "F":
                raise GancvError(f"{path.name} has 16-bit or float pixels ({im.mode}); save it as 8-bit RGB")
            im.load()
            img = im.convert("RGBA" if "A" in im.mode or "transparency" in im.info else im.mode)
    except GancvError:
        raise  # already says what is wrong (GancvError is a ValueError, caught below otherwise)
    except Image.DecompressionBombError:
        raise GancvError(f"{path.name} is too large (decompression bomb guard, limit {MAX_UPLOAD_PIXELS:,} pixels)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise GancvError(f"{path.name} is not an image gancv can read ({type(exc).__name__}); upload a PNG or JPEG") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous
    if img.mode == "RGBA":
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        img = background
    return img if img.mode in ("L", "RGB") else img.convert("RGB")


def to_tensor(img: Image.Image, channels: int) -> torch.Tensor:
    img = img.convert("L" if channels == 1 else "RGB")
    array = np.asarray(img)
    array = array[:, :, None] if array.ndim == 2 else array
    return torch.from_numpy(array.copy()).permute(2, 0, 1).unsqueeze(0)


# ---- outputs ----------------------------------------------------------------------------------
class OutputDir:
    """Where the app writes the (watermarked) PNGs it serves; cleaned when the app closes."""

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="gancv-serve-")
        self.path = Path(self._tmp.name)

    def new(self, stem: str, suffix: str = ".png") -> Path:
        return self.path / f"{stem}-{uuid.uuid4().hex[:10]}{suffix}"

    def cleanup(self) -> None:
        self._tmp.cleanup()


def enlarge(img: Image.Image) -> Image.Image:
    scale = max(1, -(-MIN_DISPLAY_SIDE // max(1, min(img.size))))
    return img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST) if scale > 1 else img


def write_output(img: Image.Image, out: OutputDir, stem: str, served: Served, seed: int | None, watermark: bool) -> str:
    from ..visual import write_image

    path = out.new(stem)
    write_image(enlarge(img), path, model_id=served.model_id, seed=seed, watermark=watermark)
    return str(path)


def environment_offline() -> None:
    """Gradio and huggingface_hub phone home unless told not to; gancv serve never does."""
    for key, value in {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
                       "GRADIO_SSR_MODE": "False", "DO_NOT_TRACK": "1"}.items():
        os.environ.setdefault(key, value)
