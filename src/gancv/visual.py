"""Pictures every run writes: sample grids, 2-D scatter plots, loss curves."""
from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import torch
from PIL import Image

from .training.checkpoint import atomic_write_bytes

if TYPE_CHECKING:
    from .provenance import Provenance


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def marked_image_bytes(img: Image.Image, fmt: str = "PNG", prov: "Provenance | None" = None) -> bytes:
    """Encoded image bytes carrying gancv's provenance (watermark + metadata, see gancv.provenance)."""
    from .provenance import encode_with_metadata, mark

    marked, meta = mark(img, prov)
    return encode_with_metadata(marked, fmt, meta, **({"quality": 95} if fmt == "JPEG" else {}))


def write_image(img: Image.Image, path: Path, *, model_id: str | None = None, seed: int | None = None,
                watermark: bool | None = None) -> Path:
    """The one place generated images are written to disk (atomically), whatever the format.

    Every image is marked as generated (gancv.provenance): metadata always, an invisible
    watermark when the image is large enough. ``model_id``/``seed``/``watermark`` override the
    provenance context that the training loop and the CLI set (``provenance.using``).
    """
    from .provenance import current

    path = Path(path)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}.get(path.suffix.lower(), "PNG")
    prov = current()
    overrides = {k: v for k, v in {"model_id": model_id, "seed": seed, "watermark": watermark}.items() if v is not None}
    if overrides:
        from dataclasses import replace

        prov = replace(prov, **overrides)
    atomic_write_bytes(path, marked_image_bytes(img, fmt, prov))
    return path


def write_animation(frames: list[Image.Image], path: Path, duration_ms: int = 120) -> Path:
    """A looping GIF, each frame marked like a still image (frames under 256x256 px: metadata only).

    GIF's 256-colour palette quantisation is harsher than JPEG, so `gancv detect` may not find
    the watermark in a GIF; the metadata comment is always there.
    """
    from .provenance import encode_with_metadata, mark

    marked = [mark(f) for f in frames]
    data = encode_with_metadata(marked[0][0], "GIF", marked[0][1], save_all=True,
                                append_images=[m[0] for m in marked[1:]], duration=duration_ms, loop=0)
    atomic_write_bytes(Path(path), data)
    return Path(path)


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """One (C, H, W) uint8 or [-1, 1] image -> PIL (L or RGB)."""
    if image.dtype != torch.uint8:
        image = to_uint8(image)
    array = image.detach().cpu().permute(1, 2, 0).numpy()
    return Image.fromarray(array[:, :, 0], mode="L") if array.shape[2] == 1 else Image.fromarray(array, mode="RGB")


def save_image(image: torch.Tensor, path: Path, **provenance: Any) -> Path:
    """``provenance``: model_id / seed / watermark, as for :func:`write_image`."""
    return write_image(tensor_to_pil(image), path, **provenance)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8 [0, 255], same shape."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def grid_image(images: torch.Tensor, nrow: int | None = None, padding: int = 2) -> Image.Image:
    """(N, C, H, W) uint8 or [-1, 1] float -> one PIL grid image."""
    from torchvision.utils import make_grid

    if images.dtype != torch.uint8:
        images = to_uint8(images)
    nrow = nrow or max(1, int(math.ceil(math.sqrt(images.shape[0]))))
    grid = make_grid(images.cpu(), nrow=nrow, padding=padding, pad_value=0)
    if images.shape[1] == 1:
        grid = grid[:1]  # make_grid replicates gray to 3 channels; keep gray PNGs gray
    return tensor_to_pil(grid)


def save_grid(images: torch.Tensor, path: Path, nrow: int | None = None, scale: int = 1, **provenance: Any) -> Path:
    """``provenance``: model_id / seed / watermark, as for :func:`write_image`."""
    img = grid_image(images, nrow)
    if scale > 1:  # tiny images (8-32 px) are easier to judge enlarged, without blurring
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    return write_image(img, path, **provenance)


def save_scatter(points: torch.Tensor, path: Path, reference: torch.Tensor | None = None, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    if reference is not None:
        ref = reference[:2000].cpu().numpy()
        ax.scatter(ref[:, 0], ref[:, 1], s=2, c="tab:blue", alpha=0.3, label="real")
    pts = points.detach().float().cpu().numpy()
    ax.scatter(pts[:, 0], pts[:, 1], s=2, c="tab:red", alpha=0.5, label="generated")
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def read_metrics(path: Path) -> list[dict]:
    rows = []
    if Path(path).is_file():
        for line in Path(path).read_text().splitlines():
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:  # a line cut short by a kill; the rest is fine
                    continue
    return rows


def plot_losses(metrics_path: Path, out: Path, keys: Iterable[str] | None = None) -> Path | None:
    rows = read_metrics(metrics_path)
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(keys) if keys else sorted({k for r in rows for k in r if k.endswith("_loss")})
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for key in keys:
        pts = [(r["step"], r[key]) for r in rows if key in r and r[key] is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=key)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(Path(out), buf.getvalue())
    return Path(out)
