"""``gancv benchmark watermark``: does the provenance watermark survive, and does it cry wolf?

Carriers are marked with a random model id and written the way gancv writes them, then
attacked: PNG round trip (untouched), JPEG at quality 90 and 75, and a 0.5x bicubic resize.
Bit accuracy is over all 64 payload bits; detection counts an image as found when the gancv
tag is recognised *and* the decoded id is the one embedded. The false-positive rate is the
share of unmarked natural-photo crops that ``detect`` calls marked.
"""
from __future__ import annotations

import io
import time
from typing import Callable

import numpy as np
from PIL import Image

from . import BENCHMARKS

GOALS = {"png_bit_accuracy": 0.99, "jpeg75_bit_accuracy": 0.90, "false_positive_rate": 0.01}


def _photo_crops(n: int, size: int, seed: int) -> list[Image.Image]:
    from ..data.builtin import load_photos

    photos = load_photos()
    rng = np.random.default_rng(seed)
    crops = []
    for i in range(n):
        p = photos[int(rng.integers(len(photos)))]
        h, w = p.shape[:2]
        side = max(int(rng.uniform(0.25, 1.0) * min(h, w)), min(size, h, w))
        top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crops.append(Image.fromarray(p[top:top + side, left:left + side]).resize((size, size), Image.Resampling.BICUBIC))
    return crops


def _digit_grids(n: int, seed: int) -> list[Image.Image]:
    """8x8 grids of 32 px digits (274x274 px, grayscale): the layout `gancv sample -n 64` writes
    for the dcgan-digits preset, filled with real digits so no training is needed."""
    import torch

    from ..data.builtin import _digit_tensors
    from ..visual import grid_image

    x, _ = _digit_tensors(32)
    g = torch.Generator().manual_seed(seed)
    return [grid_image(x[torch.randint(0, len(x), (64,), generator=g)], nrow=8) for _ in range(n)]


def _reencode(img: Image.Image, fmt: str, **kw) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    buf.seek(0)
    out = Image.open(buf)
    out.load()
    return out


def _attacks(img: Image.Image) -> dict[str, Image.Image]:
    half = img.resize((img.width // 2, img.height // 2), Image.Resampling.BICUBIC)
    return {
        "png": _reencode(img, "PNG"),
        "jpeg90": _reencode(img.convert("RGB"), "JPEG", quality=90),
        "jpeg75": _reencode(img.convert("RGB"), "JPEG", quality=75),
        "resize0.5": half,
    }


def _psnr(a: Image.Image, b: Image.Image) -> float:
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    mse = float(((x - y) ** 2).mean())
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


@BENCHMARKS.register("watermark", description="provenance watermark: bit accuracy after PNG/JPEG/resize, false positives on photos")
def watermark(quick: bool = False, device: str = "auto", log: Callable[[str], None] | None = None) -> dict:
    from ..provenance import STRENGTH, Provenance, decode_bits, detect, payload_bits
    from ..visual import marked_image_bytes

    log = log or (lambda msg: None)
    n_photos, n_grids, n_negatives = (2, 1, 6) if quick else (40, 20, 200)
    rng = np.random.default_rng(7)
    carriers = {"photos": _photo_crops(n_photos, 256, seed=101), "digit_grids": _digit_grids(n_grids, seed=5)}
    t0 = time.perf_counter()
    results: dict[str, dict] = {}
    for name, images in carriers.items():
        acc: dict[str, list[float]] = {}
        found: dict[str, int] = {}
        psnrs = []
        for img in images:
            model_id = bytes(rng.integers(0, 256, 4, dtype=np.uint8)).hex()
            want = payload_bits(model_id)
            # Written exactly as gancv writes images (metadata and all), then read back.
            written = Image.open(io.BytesIO(marked_image_bytes(img, "PNG", Provenance(model_id=model_id))))
            written.load()
            psnrs.append(_psnr(img, written))
            for attack, attacked in _attacks(written).items():
                hit = detect(attacked.convert(img.mode))
                # Bit accuracy at the scale detect decodes at (x2 undoes the halving).
                probe = attacked if attack != "resize0.5" else attacked.resize(img.size, Image.Resampling.BICUBIC)
                acc.setdefault(attack, []).append(float((decode_bits(probe.convert(img.mode)) == want).mean()))
                found[attack] = found.get(attack, 0) + int(hit.present and hit.model_id == model_id)
        results[name] = {
            "images": len(images), "size": list(images[0].size), "mode": images[0].mode,
            "psnr_db": round(float(np.mean(psnrs)), 2),
            "bit_accuracy": {k: round(float(np.mean(v)), 4) for k, v in acc.items()},
            "bit_accuracy_min": {k: round(float(np.min(v)), 4) for k, v in acc.items()},
            "detected_with_right_id": {k: round(v / len(images), 4) for k, v in found.items()},
        }
        log(f"{name}: {results[name]['bit_accuracy']}")
    negatives = _photo_crops(n_negatives, 256, seed=202)
    false_pos = sum(int(detect(img).present) for img in negatives)
    fpr = false_pos / len(negatives)
    photo = results["photos"]["bit_accuracy"]
    figures = {"png_bit_accuracy": photo["png"], "jpeg75_bit_accuracy": photo["jpeg75"], "false_positive_rate": fpr}
    met = {k: (figures[k] <= goal if k == "false_positive_rate" else figures[k] >= goal) for k, goal in GOALS.items()}
    return {
        "benchmark": "watermark", "quick": quick, "method": "invisible-watermark dwtDctSvd, luma, 64 bits",
        "strength": STRENGTH, "carriers": results, "false_positives": false_pos, "negatives": len(negatives),
        **figures, "goals": GOALS, "goals_met": met, "detect_seconds_total": round(time.perf_counter() - t0, 1),
    }
