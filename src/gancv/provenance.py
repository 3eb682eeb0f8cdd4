"""Provenance: every image gancv writes says it was generated, and by which model.

Two marks, because each survives what the other does not:

* **Metadata** (always): PNG text chunks (or EXIF for JPEG/WebP, a comment for GIF) with the
  generator, model id, seed, time and ``AI-generated``. Exact, but any re-encode strips it.
* **Invisible watermark** (DWT-DCT-SVD, the ``dwtDctSvd`` scheme of the ``invisible-watermark``
  package: the largest singular value of each 4x4 DCT block of the Haar approximation band is
  quantised to carry one bit; gancv runs a vectorised copy of the library's block coder that the
  tests check against the library): 64 bits repeated over the luma channel — a 24-bit gancv tag, the 32-bit model id and an 8-bit checksum of the id.
  It survives JPEG re-compression and resizing (``gancv benchmark watermark`` measures how
  well), but needs room: the library refuses images under 256x256 px (a 32 px sample has too
  few 4x4 wavelet blocks to hold 64 bits even once). Smaller images get metadata only, and the
  metadata says so (``gancv:watermark = skipped: ...``); grids and the web app's enlarged
  outputs are large enough.

Which model and seed an image belongs to comes from explicit arguments, or from the
:func:`using` context that the training loop and the CLI set around the code that writes.
"""
from __future__ import annotations

import contextlib
import contextvars
import hashlib
import io
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image

from . import __version__
from .errors import GancvError

TAG = bytes.fromhex("9b6ac5")  # 24 bits with 12 ones: no bias towards all-0/all-1 noise decodes
PAYLOAD_BITS = 64
MIN_PIXELS = 256 * 256  # invisible-watermark's own floor for the DWT-DCT method
# Quantisation step of the marked singular value: larger = more robust, more visible. 36 is the
# library's default; `gancv benchmark watermark` measures PSNR and bit accuracy at it. (The
# library's maxDct coder was tried first: it reads back only ~95% of bits even untouched,
# because marking a block can change which coefficient is its largest.)
STRENGTH = 36
# Tag bits allowed to differ for "present": 3 of 24 keeps the chance that an unmarked image
# matches by accident at ~1.4e-4 per decode (sum_{k<=3} C(24,k) / 2^24) while tolerating the
# bit errors JPEG and resizing cause.
TAG_TOLERANCE = 3
UNKNOWN_ID = "00000000"


@dataclass(frozen=True)
class Provenance:
    """What the next written image is marked with."""

    model_id: str = UNKNOWN_ID
    seed: int | None = None
    watermark: bool = True
    model_name: str = ""


_current: contextvars.ContextVar[Provenance] = contextvars.ContextVar("gancv_provenance", default=Provenance())


def current() -> Provenance:
    return _current.get()


@contextlib.contextmanager
def using(**fields: Any) -> Iterator[Provenance]:
    """Mark every image written inside the block with these fields (model_id, seed, watermark, model_name)."""
    fields = {k: v for k, v in fields.items() if v is not None or k == "seed"}
    prov = replace(current(), **fields)
    if prov.model_id:
        check_model_id(prov.model_id)
    token = _current.set(prov)
    try:
        yield prov
    finally:
        _current.reset(token)


def check_model_id(model_id: str) -> str:
    try:
        ok = len(model_id) == 8 and bytes.fromhex(model_id) is not None
    except ValueError:
        ok = False
    if not ok:
        raise GancvError(f"model id {model_id!r} must be 8 hex digits (32 bits), e.g. 'a1b2c3d4'")
    return model_id.lower()


def model_id_for(*parts: str | bytes) -> str:
    """A 32-bit id (8 hex digits) derived from what identifies a model, e.g. its weights file."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else part.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:8]


def model_id_of_dir(model_dir: Path) -> str:
    """The id recorded in an exported model's config.json, else one derived from its weights."""
    model_dir = Path(model_dir)
    try:
        info = json.loads((model_dir / "config.json").read_text())
        if isinstance(info, dict) and isinstance(info.get("model_id"), str):
            return check_model_id(info["model_id"])
    except (OSError, json.JSONDecodeError, GancvError):
        pass
    weights = sorted(model_dir.glob("*.safetensors"))
    return model_id_for(*(w.read_bytes() for w in weights)) if weights else model_id_for(str(model_dir.resolve()))


# ---- payload ----------------------------------------------------------------------------------
def _checksum(model_id: bytes) -> int:
    return hashlib.sha256(TAG + model_id).digest()[0]


def payload_bits(model_id: str) -> np.ndarray:
    mid = bytes.fromhex(check_model_id(model_id))
    data = TAG + mid + bytes([_checksum(mid)])
    return np.unpackbits(np.frombuffer(data, dtype=np.uint8)).astype(np.uint8)


@dataclass(frozen=True)
class Detection:
    present: bool
    model_id: str | None  # decoded id when present
    id_verified: bool  # the id's checksum matched: the id is exact, not just close
    tag_errors: int  # tag bits that differ from gancv's tag (0..24)
    scale: float  # the scale the mark was found at (2.0: the image had been halved)
    bits: np.ndarray | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"present": self.present, "model_id": self.model_id, "id_verified": self.id_verified,
                "tag_errors": self.tag_errors, "scale": self.scale}


def _parse(bits: np.ndarray, scale: float) -> Detection:
    tag_bits = np.unpackbits(np.frombuffer(TAG, dtype=np.uint8))
    errors = int((bits[:24] != tag_bits).sum())
    present = errors <= TAG_TOLERANCE
    packed = np.packbits(bits.astype(np.uint8)).tobytes()
    mid = packed[3:7]
    verified = present and packed[7] == _checksum(mid)
    return Detection(present, mid.hex() if present else None, bool(verified), errors, scale, bits)


# ---- the DWT-DCT-SVD block coder -------------------------------------------------------------
def _blocks(ca: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Row-major 4x4 blocks of the approximation band, as the library walks them (remainder untouched)."""
    rows, cols = ca.shape[0] // 4, ca.shape[1] // 4
    blocks = ca[: rows * 4, : cols * 4].reshape(rows, 4, cols, 4).transpose(0, 2, 1, 3).reshape(-1, 4, 4)
    return blocks, rows, cols


def _dct_matrix(n: int = 4) -> np.ndarray:
    """Orthonormal DCT-II matrix: ``D @ B @ D.T`` is ``cv2.dct(B)`` for an n x n block."""
    k, i = np.arange(n)[:, None], np.arange(n)[None, :]
    d = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * i + 1) * k / (2 * n))
    d[0] /= np.sqrt(2.0)
    return d


_DCT4 = _dct_matrix(4)


def encode_frame(ca: np.ndarray, bits: np.ndarray, scale: float) -> np.ndarray:
    """Vectorised ``imwatermark.dwtDctSvd.EmbedDwtDctSvd.encode_frame``: block k carries bit k mod 64
    in the largest singular value of its DCT, quantised to ``(s // scale + 0.25 + 0.5 * bit) * scale``.

    Same result as the library (tests compare them), far faster: the library runs an SVD and a
    DCT pair per block in a Python loop (0.2 s per 256x256 image), too slow for the web app.
    The SVD stays in the DCT domain like the library's: for flat blocks (singular vectors not
    unique) that puts the change in the DC coefficient, a flat offset, not a one-pixel spike.
    """
    blocks, rows, cols = _blocks(ca)
    coeffs = _DCT4 @ blocks @ _DCT4.T
    u, s, vt = np.linalg.svd(coeffs)
    bit = bits[np.arange(len(blocks)) % len(bits)].astype(np.float64)
    s[:, 0] = (s[:, 0] // scale + 0.25 + 0.5 * bit) * scale
    blocks = _DCT4.T @ (u * s[:, None, :]) @ vt @ _DCT4
    out = ca.copy()
    out[: rows * 4, : cols * 4] = blocks.reshape(rows, cols, 4, 4).transpose(0, 2, 1, 3).reshape(rows * 4, cols * 4)
    return out


def decode_frame(ca: np.ndarray, n_bits: int, scale: float) -> np.ndarray:
    """Vectorised ``EmbedDwtDctSvd.decode_frame`` + the library's vote: per bit, the share of its
    blocks whose largest singular value sits in the upper half of its quantisation step."""
    blocks, _, _ = _blocks(ca)
    s0 = np.linalg.svd(_DCT4 @ blocks @ _DCT4.T, compute_uv=False)[:, 0]
    votes = ((s0 % scale) > 0.5 * scale).astype(np.float64)
    idx = np.arange(len(blocks)) % n_bits
    share = np.bincount(idx, weights=votes, minlength=n_bits) / np.maximum(np.bincount(idx, minlength=n_bits), 1)
    return (share * 255 > 127).astype(np.uint8)  # the library's threshold, ties included


def can_watermark(size: tuple[int, int]) -> bool:
    return size[0] * size[1] >= MIN_PIXELS


def _luma(img: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Float luma (Y) and, for colour images, the float YUV array it came from."""
    import cv2

    if img.mode == "L":
        return np.asarray(img, dtype=np.float32).copy(), None
    rgb = np.asarray(img.convert("RGB"), dtype=np.float32)
    yuv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YUV)
    return yuv[:, :, 0].copy(), yuv


def _pywt():
    try:
        import pywt
    except ImportError:
        raise GancvError("the watermark needs PyWavelets: pip install PyWavelets (or pass --no-watermark)") from None
    return pywt


def embed(img: Image.Image, model_id: str, strength: int = STRENGTH) -> Image.Image:
    """Return a copy of ``img`` with the 64-bit gancv payload in its luma channel.

    The scheme is invisible-watermark's ``dwtDctSvd`` (Haar DWT, then one bit per 4x4 block of
    the approximation band). Around the block coder the wavelet round trip is done here rather
    than by the library's wrapper, which (0.2.0) swaps the horizontal and vertical detail bands
    on the inverse transform (PSNR ~27 dB on photos instead of ~43) and casts back to uint8
    without rounding or clipping. Luma only: JPEG subsamples and coarsely quantises chroma, and
    a grayscale image stays grayscale.
    """
    import cv2

    pywt = _pywt()
    if not can_watermark(img.size):
        raise GancvError(f"image {img.size[0]}x{img.size[1]} is too small to watermark (needs >= 256x256 px)")
    y, yuv = _luma(img)
    h4, w4 = y.shape[0] // 4 * 4, y.shape[1] // 4 * 4
    ca, details = pywt.dwt2(y[:h4, :w4], "haar")
    y[:h4, :w4] = pywt.idwt2((encode_frame(ca, payload_bits(model_id), strength), details), "haar")
    if yuv is None:
        return Image.fromarray(np.clip(np.rint(y), 0, 255).astype(np.uint8))
    yuv[:, :, 0] = y
    rgb = cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB)
    return Image.fromarray(np.clip(np.rint(rgb), 0, 255).astype(np.uint8))


def decode_bits(img: Image.Image, strength: int = STRENGTH) -> np.ndarray:
    """The 64 payload bits read back: a majority vote over every block that carries each bit."""
    pywt = _pywt()
    y, _ = _luma(img)
    h4, w4 = y.shape[0] // 4 * 4, y.shape[1] // 4 * 4
    ca, _ = pywt.dwt2(y[:h4, :w4], "haar")
    return decode_frame(ca, PAYLOAD_BITS, strength)


def detect(img: Image.Image, scales: tuple[float, ...] = (1.0, 2.0)) -> Detection:
    """Look for the gancv watermark at the image's size and enlarged (undoing a downscale).

    Returns at the first decode whose id checksum verifies; otherwise the best candidate
    (fewest tag errors). Enlarging tries more than one filter, because how well the block
    statistics come back depends on how the image was shrunk.
    """
    best: Detection | None = None
    for scale in scales:
        w, h = round(img.width * scale), round(img.height * scale)
        if not can_watermark((w, h)):
            continue
        filters = [None] if scale == 1.0 else [Image.Resampling.BICUBIC, Image.Resampling.LANCZOS, Image.Resampling.BILINEAR]
        for resample in filters:
            probe = img if resample is None else img.resize((w, h), resample)
            found = _parse(decode_bits(probe), scale)
            if found.id_verified:
                return found
            if best is None or (found.present, -found.tag_errors) > (best.present, -best.tag_errors):
                best = found
    return best if best is not None else Detection(False, None, False, 24, 1.0)


# ---- metadata ---------------------------------------------------------------------------------
def metadata(prov: Provenance, watermark_state: str) -> dict[str, str]:
    meta = {
        "Software": f"gancv {__version__}",
        "gancv:generator": "gancv",
        "gancv:model_id": prov.model_id,
        "gancv:created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "gancv:ai_generated": "true",
        "gancv:watermark": watermark_state,
        "Description": "AI-generated image (gancv generative model); not a photograph of a real scene",
    }
    if prov.seed is not None:
        meta["gancv:seed"] = str(prov.seed)
    if prov.model_name:
        meta["gancv:model_name"] = prov.model_name
    return meta


def read_metadata(img: Image.Image) -> dict[str, str]:
    """gancv's metadata from a PNG's text chunks, a JPEG/WebP EXIF description or a GIF comment."""
    found: dict[str, str] = {}
    text = getattr(img, "text", None) or {}
    found.update({k: v for k, v in text.items() if k.startswith("gancv:")})
    if not found:
        raw = img.info.get("comment")
        if raw is None:
            exif = img.getexif()
            raw = exif.get(0x010E)  # ImageDescription
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", "replace")
        if isinstance(raw, str) and raw.startswith("{"):
            try:
                loaded = json.loads(raw)
                found.update({k: str(v) for k, v in loaded.items() if k.startswith("gancv:")})
            except json.JSONDecodeError:
                pass
    return found


def mark(img: Image.Image, prov: Provenance | None = None) -> tuple[Image.Image, dict[str, str]]:
    """The image to write (watermarked when asked and large enough) and the metadata to attach."""
    prov = prov or current()
    if not prov.watermark:
        return img, metadata(prov, "off (--no-watermark)")
    if not can_watermark(img.size):
        return img, metadata(prov, f"skipped: {img.width}x{img.height} px is below the 256x256 px minimum")
    if img.mode not in ("L", "RGB"):
        img = img.convert("RGB")
    return embed(img, prov.model_id), metadata(prov, f"dwtDctSvd:{STRENGTH}")


def encode_with_metadata(img: Image.Image, fmt: str, meta: dict[str, str], **save_args: Any) -> bytes:
    buf = io.BytesIO()
    if fmt == "PNG":
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        for key, value in meta.items():
            info.add_text(key, value)
        # zlib level 1 above a megapixel: half the encoding time of the default level 6 (1.5 s for
        # a 2048x2048 upscale) for files about 10 % larger.
        level = 1 if img.width * img.height >= 2**20 else 6
        img.save(buf, format="PNG", pnginfo=info, **{"compress_level": level, **save_args})
    elif fmt == "GIF":
        img.save(buf, format="GIF", comment=json.dumps(meta).encode("utf-8"), **save_args)
    else:
        exif = Image.Exif()
        exif[0x0131] = meta["Software"]  # Software
        exif[0x010E] = json.dumps(meta)  # ImageDescription
        img.save(buf, format=fmt, exif=exif.tobytes(), **save_args)
    return buf.getvalue()


# ---- `gancv detect` ---------------------------------------------------------------------------
def open_image(path: Path) -> Image.Image:
    path = Path(path)
    if not path.is_file():
        raise GancvError(f"{path}: no such file")
    try:
        with Image.open(path) as im:
            im.load()
            img = im.copy()
            img.info.update(im.info)
            if hasattr(im, "text"):
                img.text = dict(im.text)  # type: ignore[attr-defined]
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise GancvError(f"{path} is not a readable image ({type(exc).__name__}); pass a PNG/JPEG/WebP file") from None
    return img


def inspect(path: Path) -> dict[str, Any]:
    """What ``gancv detect`` reports for one file."""
    img = open_image(path)
    meta = read_metadata(img)
    if img.mode not in ("L", "RGB"):
        img = img.convert("RGB")
    found = detect(img) if any(can_watermark((img.width * s, img.height * s)) for s in (1, 2)) else None
    return {
        "path": str(path),
        "size": [img.width, img.height],
        "watermark": "present" if found and found.present else ("absent" if found else "too small to carry one"),
        "model_id": found.model_id if found and found.present else None,
        "id_verified": bool(found and found.id_verified),
        "tag_errors": found.tag_errors if found else None,
        "scale": found.scale if found and found.present else None,
        "metadata": meta,
    }
