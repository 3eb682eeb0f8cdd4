"""Two-domain data for image-to-image translation.

``paired:PATH`` (pix2pix) accepts either layout of the reference code:

* ``PATH/A/`` and ``PATH/B/`` holding files with matching names (``A/x.jpg`` pairs with
  ``B/x.png``: the relative path without extension is the key); optional split folders
  ``A/train``, ``A/test`` (or ``val``) with the same in ``B/``;
* aligned side-by-side images, A on the left half and B on the right (the released
  ``facades``/``maps`` sets): in ``PATH/train`` (``PATH/test`` or ``PATH/val`` for
  ``train=False``) or directly in ``PATH``.

A paired item stacks A and B along channels, ``(2C, H, W)``, so one shuffled stream keeps the
partners together (``bundle.extra["pair_channels"] = C``). A file without a partner, or a pair
whose two images differ in size, is an error naming the file (the pairing is wrong, so training
on the rest would be too); a pair with an unreadable file is skipped and counted.

``unpaired:PATH`` (CycleGAN): ``PATH/trainA`` and ``PATH/trainB`` (``testA``/``testB`` for
``train=False``), any number of images each. The returned bundle is domain A; domain B is a
bundle of its own in ``bundle.extra["B"]``, drawn by the task's second stream.

Both default to 3 channels: grayscale files are replicated into RGB (``channels=1`` keeps gray).

``photo-pairs:STYLE`` and ``photo-unpaired:STYLE`` build the same two layouts offline from the
bundled photographs and a fixed style transform (:mod:`gancv.data.styles`); the unpaired
version draws A and B from independent crops, so no A has its true partner in B.
"""
from __future__ import annotations

import os
import statistics
from dataclasses import replace
from pathlib import Path

import torch
from PIL import Image

from ..errors import GancvError
from .core import DATASETS, DataBundle, LoadOptions, load_with, resident_bundle, subset_indices
from .folders import RESIDENT_BYTES, load_folder
from .images import BadImage, decode_all, decode_image, is_image_name, probe_image
from .styles import STYLES, apply_style
from .transforms import fit_square_pil, pil_to_tensor, set_channels_tensor

PAIRED_LAYOUT = "PATH/A/ and PATH/B/ with matching file names, or A|B side-by-side images in PATH/train/ (or PATH/)"
UNPAIRED_LAYOUT = "PATH/trainA/ and PATH/trainB/ (testA/, testB/ for evaluation)"


def _root(arg: str, spec: str, layout: str) -> Path:
    if not arg.strip():
        raise GancvError(f"data spec {spec!r} needs a path: {spec.split(':')[0]}:PATH with {layout}")
    try:
        root = Path(arg).expanduser()
        ok = root.is_dir()
    except (OSError, ValueError, RuntimeError):
        raise GancvError(f"{spec}: {arg!r} is not a usable path") from None
    if not ok:
        raise GancvError(f"{spec}: {root} is not a directory; expected {layout}")
    return root


def _images_by_key(folder: Path) -> dict[str, Path]:
    """Image files under ``folder`` keyed by their relative path without extension."""
    found: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if is_image_name(name):
                path = Path(dirpath) / name
                found.setdefault(str(path.relative_to(folder).with_suffix("")), path)
    return found


def _split(folder: Path, train: bool) -> Path | None:
    """The split sub-folder of ``folder`` when it has one (train, or test/val), else None."""
    for name in (("train",) if train else ("test", "val")):
        if (folder / name).is_dir():
            return folder / name
    return None


def _ab_pairs(spec: str, root: Path, train: bool) -> list[tuple[Path, Path]]:
    a_dir, b_dir = root / "A", root / "B"
    for d in (a_dir, b_dir):
        if not d.is_dir():
            raise GancvError(f"{spec}: {d} is missing; a paired set needs both {a_dir.name}/ and {b_dir.name}/ ({PAIRED_LAYOUT})")
    split_a = _split(a_dir, train)
    if split_a is not None:
        a_dir, b_dir = split_a, b_dir / split_a.name
    elif (a_dir / "train").is_dir() and not train:
        raise GancvError(f"{spec}: {root / 'A'} has train/ but no test/ or val/ split to evaluate on")
    a, b = _images_by_key(a_dir), _images_by_key(b_dir) if b_dir.is_dir() else {}
    for d, found in ((a_dir, a), (b_dir, b)):
        if not found:
            raise GancvError(f"{spec}: {d} contains no images; both sides of a paired set need them ({PAIRED_LAYOUT})")
    lonely = sorted(set(a) ^ set(b))
    if lonely:
        key = lonely[0]
        side, other = (a_dir, b_dir) if key in a else (b_dir, a_dir)
        raise GancvError(f"{spec}: {len(lonely)} file(s) have no partner with the same name, e.g. {side / Path(key).name}.* "
                         f"has none in {other}; add the partner or remove the file")
    return [(a[k], b[k]) for k in sorted(a)]


def _check_sizes(spec: str, pairs: list[tuple[Path, Path]]) -> list[tuple[Path, Path]]:
    """Headers only: pairs whose images differ in size are an error; unreadable ones are dropped."""
    mismatched, usable = [], []
    for a, b in pairs:
        try:
            pa, pb = probe_image(a), probe_image(b)
        except BadImage:
            usable.append((a, b))  # decoded (and counted as skipped) below
            continue
        if pa.size != pb.size:
            mismatched.append((a, b, pa.size, pb.size))
        else:
            usable.append((a, b))
    if mismatched:
        a, b, sa, sb = mismatched[0]
        raise GancvError(f"{spec}: {len(mismatched)} pair(s) differ in size, e.g. {a} is {sa[0]}x{sa[1]} but {b} is "
                         f"{sb[0]}x{sb[1]}; the two images of a pair must be aligned, so resize or remove them")
    return usable


def _decode_pair(a: Path, b: Path | None) -> tuple[Image.Image, Image.Image]:
    img_a, _ = decode_image(a)
    if b is not None:
        img_b, _ = decode_image(b)
        return img_a, img_b
    w, h = img_a.size  # side by side: A is the left half, B the right (an odd last column is dropped)
    half = w // 2
    if half < 1:
        raise BadImage(f"{w}x{h} is too narrow to hold two side-by-side images")
    return img_a.crop((0, 0, half, h)), img_a.crop((half, 0, 2 * half, h))


@DATASETS.register("paired", description="paired:PATH - pix2pix pairs: A/ and B/ with matching names, or A|B side-by-side images")
def load_paired(arg: str, opts: LoadOptions) -> DataBundle:
    spec = f"paired:{arg}"
    root = _root(arg, spec, PAIRED_LAYOUT)
    if (root / "A").is_dir() or (root / "B").is_dir():
        pairs: list[tuple[Path, Path | None]] = list(_check_sizes(spec, _ab_pairs(spec, root, opts.train)))
    else:
        folder = _split(root, opts.train)
        if folder is None:
            if (root / "train").is_dir() and not opts.train:
                raise GancvError(f"{spec}: {root} has train/ but no test/ or val/ split to evaluate on")
            folder = root
        files = sorted(_images_by_key(folder).values())
        if not files:
            raise GancvError(f"{spec}: no images in {folder}; expected {PAIRED_LAYOUT}")
        pairs = [(f, None) for f in files]
    keep = subset_indices(len(pairs), opts.max_items, opts.seed)
    pairs = [pairs[i] for i in keep]
    channels = opts.channels or 3
    size = opts.image_size
    if size is None:
        shorts = []
        for a, b in pairs[:64]:
            try:
                w, h = probe_image(a).size
                shorts.append(min(h, w // 2 if b is None else w))
            except BadImage:
                continue
        if not shorts:
            raise GancvError(f"{spec}: none of the first {min(len(pairs), 64)} files can be read; run 'gancv data check {spec}'")
        size = int(statistics.median_low(shorts))
    if len(pairs) * 2 * channels * size * size > RESIDENT_BYTES:
        raise GancvError(f"{spec}: {len(pairs)} pairs at {size} px need more than {RESIDENT_BYTES >> 30} GiB of memory; "
                         "set max_items or a smaller image_size")
    out = torch.empty((len(pairs), 2 * channels, size, size), dtype=torch.uint8)

    def fill(i: int) -> None:
        img_a, img_b = _decode_pair(*pairs[i])
        out[i, :channels] = pil_to_tensor(fit_square_pil(img_a, size), channels)
        out[i, channels:] = pil_to_tensor(fit_square_pil(img_b, size), channels)

    failures = [reason for _, reason in decode_all(fill, range(len(pairs)))]
    ok = [i for i, f in enumerate(failures) if f is None]
    bad = [(pairs[i][0], f) for i, f in enumerate(failures) if f is not None]
    if not ok:
        raise GancvError(f"{spec}: none of the {len(pairs)} pairs can be decoded (e.g. {bad[0][0]}: {bad[0][1]}); "
                         f"run 'gancv data check {spec}'")
    if bad:
        import warnings

        warnings.warn(f"{spec}: skipped {len(bad)} of {len(pairs)} pairs with an unusable file "
                      f"(e.g. {bad[0][0].name}: {bad[0][1]})", stacklevel=2)
    bundle = resident_bundle(spec, out if len(ok) == len(pairs) else out[ok], None, skipped=len(bad))
    bundle.extra["pair_channels"] = channels
    return bundle


def _has_images(folder: Path) -> bool:
    for _, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        if any(is_image_name(f) for f in filenames):
            return True
    return False


def _unlabelled(bundle: DataBundle, spec: str) -> DataBundle:
    # why drop labels: sub-folders of trainA/ are not classes for CycleGAN, just organisation.
    if bundle.x is not None:
        return resident_bundle(spec, bundle.x, None, skipped=bundle.skipped)
    return DataBundle(spec, "image", bundle.shape, 0, [], None, None, bundle.dataset, skipped=bundle.skipped)


@DATASETS.register("unpaired", description="unpaired:PATH - CycleGAN layout: trainA/ and trainB/ (testA/, testB/)")
def load_unpaired(arg: str, opts: LoadOptions) -> DataBundle:
    spec = f"unpaired:{arg}"
    root = _root(arg, spec, UNPAIRED_LAYOUT)
    names = ("trainA", "trainB") if opts.train else ("testA", "testB")
    for name in names:
        if not (root / name).is_dir():
            raise GancvError(f"{spec}: {root / name} is missing; expected {UNPAIRED_LAYOUT}")
        if not _has_images(root / name):
            raise GancvError(f"{spec}: {root / name} has no images; CycleGAN needs images in both "
                             f"{names[0]}/ and {names[1]}/")
    opts = replace(opts, channels=opts.channels or 3)
    a = _unlabelled(load_folder(str(root / names[0]), opts), spec)
    b = _unlabelled(load_folder(str(root / names[1]), replace(opts, image_size=a.shape[-1])), f"{spec}/{names[1]}")
    a.skipped += b.skipped
    a.extra["B"] = b
    return a


def _styled_crops(style: str, opts: LoadOptions) -> tuple[torch.Tensor, torch.Tensor]:
    crops = load_with("photos", replace(opts, channels=3)).x
    assert crops is not None
    a, b = apply_style(style, crops)
    return set_channels_tensor(a, opts.channels), set_channels_tensor(b, opts.channels)


def _style_name(prefix: str, arg: str) -> str:
    if arg not in STYLES:
        raise GancvError(f"data spec {prefix}:{arg!r}: choose a style: {', '.join(prefix + ':' + s for s in STYLES.names())}")
    return arg


@DATASETS.register("photo-pairs", description="photo-pairs:STYLE - photo crops (A) and the same crops styled (B): cartoon, gray, colorize")
def load_photo_pairs(arg: str, opts: LoadOptions) -> DataBundle:
    a, b = _styled_crops(_style_name("photo-pairs", arg), opts)
    bundle = resident_bundle(f"photo-pairs:{arg}", torch.cat([a, b], 1), None)
    bundle.extra["pair_channels"] = a.shape[1]
    return bundle


@DATASETS.register("photo-unpaired", description="photo-unpaired:STYLE - photo crops (A) and independently drawn styled crops (B)")
def load_photo_unpaired(arg: str, opts: LoadOptions) -> DataBundle:
    style = _style_name("photo-unpaired", arg)
    a, _ = _styled_crops(style, opts)
    # why another seed: B's crops come from an independent draw, so no A has its true partner in B
    _, b = _styled_crops(style, replace(opts, seed=opts.seed + 7919))
    bundle = resident_bundle(f"photo-unpaired:{arg}", a, None)
    bundle.extra["B"] = resident_bundle(f"photo-unpaired:{arg}/B", b, None)
    return bundle
