"""Decoding one image file safely: every failure becomes :class:`BadImage` with a short reason.

Bad files are the normal case in scraped folders, so nothing here may crash a loader:

* zero bytes, not an image, unreadable -> ``BadImage``;
* decompression bombs (a small file declaring a huge canvas) -> ``BadImage`` before any
  pixel is allocated; the limit is :data:`MAX_PIXELS` (Pillow's default);
* truncated / corrupt data -> ``BadImage``, even if some other code has set Pillow's
  ``ImageFile.LOAD_TRUNCATED_IMAGES`` (which would otherwise fill the missing part with gray);
* CMYK, 16-bit, 32-bit float, 1-bit, palette and alpha images are converted to ``L``/``RGB``
  and the conversion is reported. Transparent pixels are composited on **white**
  (:data:`ALPHA_BACKGROUND`): cut-out objects, icons and sprites, the usual RGBA content,
  are drawn on white, and transparent pixels often store junk colour.
"""
from __future__ import annotations

import os
import threading
import warnings
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
MAX_PIXELS = 89_478_485  # Pillow's own default: 1024 * 1024 * 1024 // 4 // 3
ALPHA_BACKGROUND = (255, 255, 255)

_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_OPEN_LOCK = threading.Lock()
_TRUNC_LOCK = threading.Lock()
_trunc_depth = 0
_trunc_saved = False


class BadImage(Exception):
    """A file that cannot be used; ``str(exc)`` is the reason shown to the user."""


@dataclass(frozen=True)
class Probe:
    """What the header says: enough to plan sizes without decoding pixels."""

    size: tuple[int, int]  # (width, height)
    mode: str

    @property
    def gray(self) -> bool:
        return self.mode in _GRAY_MODES


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


@contextmanager
def strict_truncation() -> Iterator[None]:
    """Make truncated files raise for the duration, whatever the global Pillow setting is.

    why reference counted under a lock: decoding runs in a thread pool, and the flag is a
    module global of Pillow; the first thread in turns it off, the last one out restores it.
    """
    global _trunc_depth, _trunc_saved
    with _TRUNC_LOCK:
        if _trunc_depth == 0:
            _trunc_saved = ImageFile.LOAD_TRUNCATED_IMAGES
            ImageFile.LOAD_TRUNCATED_IMAGES = False
        _trunc_depth += 1
    try:
        yield
    finally:
        with _TRUNC_LOCK:
            _trunc_depth -= 1
            if _trunc_depth == 0:
                ImageFile.LOAD_TRUNCATED_IMAGES = _trunc_saved


def _bomb(w: int, h: int, limit: int) -> BadImage:
    return BadImage(f"decompression bomb: declares {w}x{h} = {w * h:,} pixels, over the {limit:,}-pixel limit")


def open_image(path: str | os.PathLike, max_pixels: int | None = None) -> Image.Image:
    """Open ``path`` reading only the header; the caller closes the returned image."""
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    try:
        if os.stat(path).st_size == 0:
            raise BadImage("empty file (0 bytes)")
    except OSError as exc:
        raise BadImage(f"cannot read the file: {exc.strerror or exc}") from None
    # why a lock: catch_warnings swaps the process-wide filter list and is not thread safe;
    # header parsing is quick, the expensive decode happens outside the lock.
    with _OPEN_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(path)
        except UnidentifiedImageError:
            raise BadImage("not an image (Pillow cannot identify the format)") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise BadImage(f"decompression bomb: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - any parser error means "unusable file"
            raise BadImage(f"unreadable header: {exc}") from None
    w, h = img.size
    if w * h > limit:
        img.close()
        raise _bomb(w, h, limit)
    if w == 0 or h == 0:
        img.close()
        raise BadImage(f"empty canvas ({w}x{h})")
    return img


def probe_image(path: str | os.PathLike, max_pixels: int | None = None) -> Probe:
    """Header check (existence, format, size limit) without decoding the pixels."""
    img = open_image(path, max_pixels)
    with img:
        return Probe(img.size, img.mode)


def decode_image(path: str | os.PathLike, max_pixels: int | None = None) -> tuple[Image.Image, list[str]]:
    """Fully decode ``path`` to an ``L`` or ``RGB`` image; returns it with conversion notes."""
    with strict_truncation():
        img = open_image(path, max_pixels)
        with img:
            try:
                img.load()
            except Exception as exc:  # noqa: BLE001 - OSError, SyntaxError, zlib.error, ValueError...
                raise BadImage(f"truncated or corrupt: {exc}") from None
            try:
                # why: phone photos store rotation in EXIF; without this they train sideways.
                img = ImageOps.exif_transpose(img)
            except Exception:  # noqa: BLE001 - broken EXIF is not a reason to drop the pixels
                pass
            return normalize_mode(img)


def decode_all(decode: Callable[[Any], Any], items: Iterable[Any]) -> list[tuple[Any, str | None]]:
    """``decode(item)`` for every item, in order: ``(result, None)``, or ``(None, reason)`` where
    it raised :class:`BadImage` (any other error propagates)."""

    def one(item: Any) -> tuple[Any, str | None]:
        try:
            return decode(item), None
        except BadImage as exc:
            return None, str(exc)

    # why threads: Pillow releases the GIL while decoding, and threads need no pickling.
    with ThreadPoolExecutor(min(8, (os.cpu_count() or 1) + 2)) as pool:
        return list(pool.map(one, items))


def _composite(img: Image.Image, gray: bool) -> Image.Image:
    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, ALPHA_BACKGROUND + (255,))
    flat = Image.alpha_composite(background, rgba)
    return flat.convert("L" if gray else "RGB")


def normalize_mode(img: Image.Image) -> tuple[Image.Image, list[str]]:
    """Any Pillow mode -> ``L`` or ``RGB`` plus a human note for each conversion made."""
    mode = img.mode
    if mode in ("RGB", "L"):
        if "transparency" in img.info:  # a colour key marks transparent pixels
            return _composite(img, mode == "L"), [f"{mode} with a transparent colour composited on white"]
        return img, []
    if mode in ("RGBA", "RGBa", "LA", "La", "PA"):
        gray = mode in ("LA", "La")
        return _composite(img, gray), [f"{mode} alpha composited on white"]
    if mode == "P":
        if "transparency" in img.info:
            return _composite(img, False), ["palette image with transparency composited on white"]
        return img.convert("RGB"), ["palette (P) converted to RGB"]
    if mode == "1":
        return img.convert("L"), ["1-bit converted to 8-bit grayscale"]
    if mode == "CMYK":
        return img.convert("RGB"), ["CMYK converted to RGB"]
    if mode.startswith("I"):
        # why divide by 257: maps the 16-bit range 0..65535 exactly onto 0..255 (Pillow's own
        # convert("L") clips instead, turning most 16-bit images white).
        arr = np.asarray(img).astype(np.float64) / 257.0
        return Image.fromarray(np.rint(arr).clip(0, 255).astype(np.uint8), "L"), [f"16-bit ({mode}) scaled to 8-bit grayscale"]
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        finite = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
        # why: float TIFFs are conventionally 0..1; anything else is taken as 0..255 and clipped.
        scale = 255.0 if finite.size and finite.max() <= 1.0 else 1.0
        out = np.rint(finite * scale).clip(0, 255).astype(np.uint8)
        return Image.fromarray(out, "L"), ["32-bit float scaled to 8-bit grayscale"]
    try:
        return img.convert("RGB"), [f"{mode} converted to RGB"]
    except Exception as exc:  # noqa: BLE001 - e.g. LAB, which Pillow cannot convert
        raise BadImage(f"unsupported colour mode {mode}: {exc}") from None
