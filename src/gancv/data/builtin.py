"""Data that ships with the dependencies, so every one of these loads offline.

``digits`` and ``stacked-digits`` come from scikit-learn's 1,797 real handwritten digits,
``faces`` from the LFW crops in scikit-image, ``photos`` from the colour photographs both
libraries ship, and ``toy2d`` is sampled from the Gaussian mixtures of the mode-collapse
literature (the PacGAN / VEEGAN protocol). Generated sets (``stacked-digits``, ``toy2d``,
``photos``) are deterministic in ``seed``, and ``train=False`` draws an independent sample
(another random stream) of the same distribution. ``digits`` and ``faces`` have no
separate test split: ``train=False`` returns the same images.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from PIL import Image

from ..errors import GancvError
from .core import DATASETS, DataBundle, LoadOptions, no_argument, resident_bundle, rng_for, subset_indices
from .transforms import fit_square_tensor, set_channels_tensor

DEFAULT_STACKED_ITEMS = 25_600  # the stacked-MNIST protocol's sample count
DEFAULT_TOY2D_ITEMS = 100_000
DEFAULT_PHOTO_CROPS = 2_000
DEFAULT_PHOTO_SIZE = 64  # photos have no native size; 64 keeps crops detailed and fast
_LFW_FACES = 100  # skimage.data.lfw_subset(): the first 100 of 200 crops are faces, the rest are not
# why a held-out split: GAN inversion must be judged on faces the generator never saw.
_FACES_TRAIN = 90
_FACE_SPLITS = {"": slice(0, _LFW_FACES), "train": slice(0, _FACES_TRAIN), "heldout": slice(_FACES_TRAIN, _LFW_FACES)}


def _stream(opts: LoadOptions) -> np.random.Generator:
    # why two streams: a test split must be a fresh sample, not a copy of the training one.
    return rng_for(opts.seed, 0 if opts.train else 1)


@lru_cache(maxsize=1)
def _digits_raw() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    # why 255/16: the set stores 0..16 ink counts; this maps full ink to white on black.
    images = np.rint(digits.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    images.setflags(write=False)
    labels = digits.target.astype(np.int64)
    labels.setflags(write=False)
    return images, labels


def _digit_tensors(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = _digits_raw()
    x = torch.from_numpy(images.copy()).unsqueeze(1)
    return fit_square_tensor(x, size), torch.from_numpy(labels.copy())


@DATASETS.register("digits", description="scikit-learn's 1,797 real 8x8 handwritten digits, 10 classes (offline default)")
def load_digits_set(arg: str, opts: LoadOptions) -> DataBundle:
    no_argument("digits", arg)
    x, y = _digit_tensors(opts.image_size or 8)
    idx = torch.from_numpy(subset_indices(len(x), opts.max_items, opts.seed))
    x = set_channels_tensor(x[idx], opts.channels)
    return resident_bundle("digits", x, y[idx], [str(d) for d in range(10)])


@DATASETS.register("stacked-digits", description="3 random digits as the R, G, B channels: 1,000 modes (stacked-MNIST protocol)")
def load_stacked_digits(arg: str, opts: LoadOptions) -> DataBundle:
    no_argument("stacked-digits", arg)
    if opts.channels == 1:
        raise GancvError("stacked-digits has one digit per colour channel; channels=1 would merge them: use channels=3")
    base, labels = _digit_tensors(opts.image_size or 8)
    n = opts.max_items or DEFAULT_STACKED_ITEMS
    picks = torch.from_numpy(_stream(opts).integers(0, len(base), size=(n, 3)))
    x = base[picks].flatten(1, 2)  # (n, 3, 1, S, S) -> (n, 3, S, S): digit k becomes channel k
    y = (labels[picks] * torch.tensor([100, 10, 1])).sum(dim=1)
    return resident_bundle("stacked-digits", x.contiguous(), y, [f"{k:03d}" for k in range(1000)])


_TOY2D = {
    # name: (centres, std)
    "ring": ([(math.cos(2 * math.pi * k / 8), math.sin(2 * math.pi * k / 8)) for k in range(8)], 0.01),
    "grid": ([(float(a), float(b)) for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4)], 0.05),
}


def toy2d_modes(name: str) -> tuple[torch.Tensor, float]:
    """Mode centres ``(M, 2)`` float32 and the per-axis std of ``toy2d:ring`` / ``toy2d:grid``.

    Benchmarks score samples against these (a sample within 3 std of its nearest centre is
    high quality). ``name`` may be ``ring``/``grid`` or the full spec ``toy2d:ring``.
    """
    key = name.split(":", 1)[1] if name.startswith("toy2d:") else name
    if key not in _TOY2D:
        raise GancvError(f"toy2d mixture {name!r} does not exist; choose one of: {', '.join(sorted(_TOY2D))}")
    centres, std = _TOY2D[key]
    return torch.tensor(centres, dtype=torch.float32), std


@DATASETS.register("toy2d", description="2-D Gaussian mixtures for mode coverage: toy2d:ring (8 modes), toy2d:grid (25 modes)")
def load_toy2d(arg: str, opts: LoadOptions) -> DataBundle:
    if not arg:
        raise GancvError(f"data spec 'toy2d' needs a mixture name: use {' or '.join('toy2d:' + k for k in sorted(_TOY2D))}")
    centres, std = toy2d_modes(arg)
    n = opts.max_items or DEFAULT_TOY2D_ITEMS
    rng = _stream(opts)
    modes = rng.integers(0, len(centres), size=n)  # iid uniform mode choice, as in the PacGAN protocol
    x = centres.numpy()[modes] + std * rng.standard_normal((n, 2))
    return resident_bundle(
        f"toy2d:{arg}",
        torch.from_numpy(x.astype(np.float32)),
        torch.from_numpy(modes.astype(np.int64)),
        [f"mode{k}" for k in range(len(centres))],
        kind="points",
    )


@DATASETS.register("faces", description="the 100 LFW face crops scikit-image ships (25x25 gray) plus their mirror "
                   "images; faces:train / faces:heldout split them 90 / 10 (inversion of unseen faces)")
def load_faces(arg: str, opts: LoadOptions) -> DataBundle:
    if arg not in _FACE_SPLITS:
        raise GancvError(f"data spec faces:{arg!r}: use 'faces' (all 100), 'faces:train' (the first "
                         f"{_FACES_TRAIN}) or 'faces:heldout' (the last {_LFW_FACES - _FACES_TRAIN})")
    from skimage.data import lfw_subset

    crops = np.asarray(lfw_subset()[:_LFW_FACES])[_FACE_SPLITS[arg]]
    if crops.dtype != np.uint8:  # why: the docs say uint8 but current releases return floats in [0, 1]
        crops = np.rint(np.clip(crops, 0.0, 1.0) * 255.0).astype(np.uint8)
    # why flips: 100 images is tiny; mirrored faces are equally plausible faces (standard GAN augmentation).
    both = np.concatenate([crops, crops[:, :, ::-1]])
    x = torch.from_numpy(np.ascontiguousarray(both)).unsqueeze(1)
    x = fit_square_tensor(x, opts.image_size or x.shape[-1])
    idx = torch.from_numpy(subset_indices(len(x), opts.max_items, opts.seed))
    return resident_bundle("faces" + (f":{arg}" if arg else ""), set_channels_tensor(x[idx], opts.channels), None)


# The ten colour photographs of ``photos``, in load order; the restoration benchmarks never train
# on PHOTOS_HELDOUT and test on crops of them (``photos:train`` is the other eight).
PHOTO_NAMES = ("china", "flower", "astronaut", "chelsea", "coffee", "hubble_deep_field", "immunohistochemistry",
               "retina", "rocket", "motorcycle")
PHOTOS_HELDOUT = ("chelsea", "motorcycle")
# ``photos:more``: further real photographs the dependencies ship, none of them a view of a held-out
# one (scikit-image's ``cat`` is chelsea and the right stereo view is the motorcycle again, so both
# are left out): matplotlib's colour portrait of Grace Hopper and scikit-image's grayscale photos,
# repeated into RGB. why they are worth having: super-resolution learns mostly luminance detail
# (edges, textures), and eight colour photos are too few to learn it without overfitting.
# Motion-blurred (clock), microscopy (cell) and astronomy (moon) images are left out: blur is
# exactly what an SR target must not have.
MORE_PHOTO_NAMES = ("grace_hopper", "camera", "coins", "brick", "grass", "gravel", "text", "page")
_PHOTO_GROUPS = ("train", "heldout", "more")


def _rgb(p: np.ndarray) -> np.ndarray:
    arr = np.asarray(p, dtype=np.uint8)
    arr = np.repeat(arr[:, :, None], 3, axis=2) if arr.ndim == 2 else arr[:, :, :3]
    arr = np.ascontiguousarray(arr)
    arr.setflags(write=False)  # why: cached and shared between callers
    return arr


@lru_cache(maxsize=1)
def _photos() -> tuple[np.ndarray, ...]:
    from skimage import data as sk
    from sklearn.datasets import load_sample_images

    # why this list: colour photographs only (no charts, renders or test patterns), each shipped
    # inside the wheels, so nothing is fetched; grayscale photos (camera, moon...) are left out
    # so every crop of the set has real colour.
    photos = list(load_sample_images().images)  # china.jpg, flower.jpg
    for name in ("astronaut", "chelsea", "coffee", "hubble_deep_field", "immunohistochemistry", "retina", "rocket"):
        photos.append(getattr(sk, name)())
    photos.append(sk.stereo_motorcycle()[0])  # left view only: the right one is a near duplicate
    return tuple(_rgb(p) for p in photos)


@lru_cache(maxsize=1)
def _more_photos() -> tuple[np.ndarray, ...]:
    from matplotlib import cbook
    from skimage import data as sk

    with cbook.get_sample_data("grace_hopper.jpg") as f:  # a file inside matplotlib's wheel
        photos = [np.asarray(Image.open(f).convert("RGB"))]
    photos += [getattr(sk, name)() for name in MORE_PHOTO_NAMES[1:]]
    return tuple(_rgb(p) for p in photos)


def load_photos() -> list[np.ndarray]:
    """The real colour photographs scikit-learn and scikit-image ship: uint8 ``(H, W, 3)`` each,
    read-only, always in the same order (china, flower, astronaut, chelsea, coffee,
    hubble_deep_field, immunohistochemistry, retina, rocket, motorcycle)."""
    return list(_photos())


def photo_group(groups: str) -> list[np.ndarray]:
    """The photographs of ``photos:GROUPS`` (``+``-joined: train, heldout, more; "" = train+heldout)."""
    if not groups:
        return list(_photos())  # why not train+heldout: the original order keeps every seeded crop of `photos` as it was
    names = [g.strip() for g in groups.split("+")]
    bad = [g for g in names if g not in _PHOTO_GROUPS] or ([names[0]] if len(set(names)) < len(names) else [])
    if bad:
        raise GancvError(f"data spec photos:{groups!r}: {bad[0]!r} is not a photo group (or is repeated); use photos or "
                         f"photos:GROUP[+GROUP...] with groups {', '.join(_PHOTO_GROUPS)}, e.g. photos:train+more")
    out: list[np.ndarray] = []
    for g in names:
        if g == "more":
            out += _more_photos()
        else:
            out += [p for n, p in zip(PHOTO_NAMES, _photos()) if (n in PHOTOS_HELDOUT) == (g == "heldout")]
    return out


@DATASETS.register("photos", description="random multi-scale square crops of the real photographs scikit-learn, scikit-image "
                   "and matplotlib ship; photos = the ten colour ones, photos:train / photos:heldout split them 8 / 2 "
                   "(held out: chelsea, motorcycle), photos:train+more adds eight more (grace_hopper and grayscale ones)")
def load_photo_crops(arg: str, opts: LoadOptions) -> DataBundle:
    size = opts.image_size or DEFAULT_PHOTO_SIZE
    n = opts.max_items or DEFAULT_PHOTO_CROPS
    images = [Image.fromarray(p) for p in photo_group(arg)]
    rng = _stream(opts)
    x = torch.empty((n, 3, size, size), dtype=torch.uint8)
    for i in range(n):
        img = images[rng.integers(len(images))]
        w, h = img.size
        short = min(w, h)
        # why 20%..100% of the short side: multi-scale crops (textures and whole scenes), never
        # smaller than the output when the photo allows it, so crops are rarely upsampled.
        side = max(int(rng.uniform(0.2, 1.0) * short), min(size, short))
        left, top = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        # why reducing_gap: an integer box-reduce first makes big downscales ~5x faster, same look.
        crop = img.resize((size, size), Image.Resampling.BICUBIC, box=(left, top, left + side, top + side), reducing_gap=3.0)
        x[i] = torch.from_numpy(np.array(crop)).permute(2, 0, 1)
    return resident_bundle("photos" + (f":{arg}" if arg else ""), set_channels_tensor(x, opts.channels), None)
