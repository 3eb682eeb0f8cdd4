"""``folder:PATH``: a directory of images, optionally one sub-folder per class.

Layout rules: images are found recursively (``IMAGE_EXTENSIONS``, case-insensitive, hidden
files and folders skipped). If any immediate sub-folder of PATH contains images, every such
sub-folder is a class (sorted names) and images lying directly in PATH are ignored;
otherwise the set is unlabelled.

Up to :data:`RESIDENT_LIMIT` files (and :data:`RESIDENT_BYTES` of resized pixels) are
decoded once (in threads) into one uint8 tensor. Larger folders are lazy: empty files are dropped up front and every other file is decoded
when it is first asked for; a bad one is replaced by the next good index and counted, so
an epoch never crashes on a file.
"""
from __future__ import annotations

import os
import statistics
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..errors import GancvError
from .core import DATASETS, DataBundle, LoadOptions, resident_bundle, rng_for, subset_indices
from .images import IMAGE_EXTENSIONS, BadImage, Probe, decode_all, decode_image, is_image_name, probe_image
from .transforms import fit_square_pil, native_channels, pil_to_tensor

RESIDENT_LIMIT = 5_000
RESIDENT_BYTES = 2 << 30  # why: 5,000 images at 1024px would need 15 GiB; such folders go lazy
_NATIVE_PROBES = 64  # headers read to pick the native size/channels of a lazy folder


@dataclass
class FolderScan:
    """The image files under a folder and their class labels (``-1`` when unlabelled)."""

    root: Path
    files: list[Path] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    class_names: list[str] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)  # loose files beside class folders


def _exts() -> str:
    return ", ".join(e.lstrip(".") for e in IMAGE_EXTENSIONS)


def scan_folder(path: str | os.PathLike, spec: str = "folder") -> FolderScan:
    """Find the images under ``path``; raises :class:`GancvError` if there are none."""
    try:
        root = Path(path).expanduser()
        exists, is_dir = root.exists(), root.is_dir()
    except (OSError, ValueError, RuntimeError):  # null bytes, unencodable names, bad ~user
        raise GancvError(f"{spec}: {str(path)!r} is not a usable path; give folder:PATH with a directory of images") from None
    if not exists:
        raise GancvError(f"{spec}: folder {root} does not exist; give folder:PATH with a directory of images ({_exts()})")
    if not is_dir:
        raise GancvError(f"{spec}: {root} is a file, not a folder; give folder:PATH with a directory of images ({_exts()})")

    loose: list[Path] = []
    by_class: dict[str, list[Path]] = {}
    for dirpath, dirnames, filenames in os.walk(root, onerror=None):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        here = Path(dirpath)
        rel = here.relative_to(root).parts
        images = [here / f for f in sorted(filenames) if is_image_name(f)]
        if not rel:
            loose.extend(images)
        elif images:
            by_class.setdefault(rel[0], []).extend(images)

    scan = FolderScan(root)
    if by_class:
        scan.class_names = sorted(by_class)
        for label, name in enumerate(scan.class_names):
            files = sorted(by_class[name])
            scan.files.extend(files)
            scan.labels.extend([label] * len(files))
        scan.ignored = loose
    else:
        scan.files = loose
        scan.labels = [-1] * len(loose)
    if not scan.files:
        raise GancvError(
            f"{spec}: folder {root} contains no image files ({_exts()}); "
            "put images there, optionally in one sub-folder per class"
        )
    return scan


def _warn_skipped(spec: str, root: Path, bad: list[tuple[Path, str]], total: int) -> None:
    path, reason = bad[0]
    warnings.warn(
        f"{spec}: skipped {len(bad)} of {total} image files that cannot be used "
        f"(e.g. {path.name}: {reason}); run 'gancv data check {root}' to list them all",
        stacklevel=2,
    )


def _no_usable(spec: str, root: Path, bad: list[tuple[Path, str]]) -> GancvError:
    path, reason = bad[0]
    return GancvError(
        f"{spec}: none of the {len(bad)} image files in {root} can be used (e.g. {path.name}: {reason}); "
        f"run 'gancv data check {root}' to list the problems"
    )


def _native(probes: list[Probe]) -> tuple[int, int]:
    # why the median shorter side: one thumbnail or one poster must not set the size of all.
    size = int(statistics.median_low(min(p.size) for p in probes))
    return size, native_channels([p.mode for p in probes])


def _decode_fit(path: Path, size: int, channels: int) -> torch.Tensor:
    img, _ = decode_image(path)
    return pil_to_tensor(fit_square_pil(img, size), channels)


class LazyImageDataset(Dataset):
    """Decodes each file on access; items ``(uint8 (C, S, S), int64 label)``.

    A file that fails to decode is remembered and replaced by the next usable index (so
    ``len`` and epochs stay stable); the first one in each process gives one warning.
    """

    def __init__(self, files: list[Path], labels: list[int], size: int, channels: int, spec: str, check: str):
        self.files = [str(f) for f in files]  # str: cheaper to pickle into DataLoader workers
        self.labels = torch.tensor(labels, dtype=torch.int64)
        self.size = size
        self.channels = channels
        self.spec = spec
        self.check = check  # what to pass to `gancv data check` to list every bad file
        self.bad: dict[int, str] = {}

    @property
    def skipped(self) -> int:
        return len(self.bad)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self.files)
        for step in range(n):
            j = (index + step) % n
            if j in self.bad:
                continue
            try:
                return _decode_fit(Path(self.files[j]), self.size, self.channels), self.labels[j]
            except BadImage as exc:
                if not self.bad:
                    warnings.warn(
                        f"{self.spec}: skipping unusable file {self.files[j]} ({exc}) and any further bad "
                        f"files; run 'gancv data check {self.check}' to list them all",
                        stacklevel=2,
                    )
                self.bad[j] = str(exc)
        raise GancvError(f"{self.spec}: none of the {n} image files can be decoded; run 'gancv data check {self.check}'")


@DATASETS.register("folder", description="folder:PATH - your images (png/jpg/bmp/webp/tif), one sub-folder per class optional")
def load_folder(arg: str, opts: LoadOptions) -> DataBundle:
    spec = f"folder:{arg}"
    if not arg.strip():
        raise GancvError("data spec 'folder' needs a path: use folder:PATH (a directory of images)")
    scan = scan_folder(arg, spec)
    keep = subset_indices(len(scan.files), opts.max_items, opts.seed)
    files = [scan.files[i] for i in keep]
    labels = [scan.labels[i] for i in keep]
    if len(files) <= RESIDENT_LIMIT:
        return _load_resident(spec, scan, files, labels, opts)
    return _load_lazy(spec, scan, files, labels, opts)


def _load_resident(spec: str, scan: FolderScan, files: list[Path], labels: list[int], opts: LoadOptions) -> DataBundle:
    bad: list[tuple[Path, str]] = []
    good: list[tuple[Path, int, Probe]] = []
    for path, label in zip(files, labels):  # headers first: cheap, and it sizes the decode
        try:
            good.append((path, label, probe_image(path)))
        except BadImage as exc:
            bad.append((path, str(exc)))
    if not good:
        raise _no_usable(spec, scan.root, bad)
    size, channels = _native([p for _, _, p in good])
    size, channels = opts.image_size or size, opts.channels or channels
    if len(good) * channels * size * size > RESIDENT_BYTES:
        return _load_lazy(spec, scan, files, labels, replace(opts, image_size=size, channels=channels))

    # why preallocated: stacking a list of tensors would briefly hold every image twice.
    out = torch.empty((len(good), channels, size, size), dtype=torch.uint8)

    def fill(i: int) -> None:
        out[i] = _decode_fit(good[i][0], size, channels)

    failures = [reason for _, reason in decode_all(fill, range(len(good)))]
    ok = [i for i, failure in enumerate(failures) if failure is None]
    bad += [(good[i][0], failure) for i, failure in enumerate(failures) if failure is not None]
    if not ok:
        raise _no_usable(spec, scan.root, bad)
    if bad:
        _warn_skipped(spec, scan.root, bad, len(files))
    x = out if len(ok) == len(good) else out[ok]
    kept = [good[i][1] for i in ok]
    y = torch.tensor(kept, dtype=torch.int64) if scan.class_names else None
    return resident_bundle(spec, x, y, scan.class_names, skipped=len(bad))


def _load_lazy(spec: str, scan: FolderScan, files: list[Path], labels: list[int], opts: LoadOptions) -> DataBundle:
    bad: list[tuple[Path, str]] = []
    usable, usable_labels = [], []
    for path, label in zip(files, labels):
        try:
            empty = path.stat().st_size == 0
        except OSError as exc:
            bad.append((path, f"cannot read the file: {exc.strerror or exc}"))
            continue
        if empty:
            bad.append((path, "empty file (0 bytes)"))
        else:
            usable.append(path)
            usable_labels.append(label)
    if not usable:
        raise _no_usable(spec, scan.root, bad)
    size, channels = opts.image_size, opts.channels
    if size is None or channels is None:
        # why a sample of headers: opening every header of a 200k-image folder takes minutes.
        rng = rng_for(opts.seed, 0x9E7)
        probes = []
        for i in sorted(rng.choice(len(usable), size=min(_NATIVE_PROBES, len(usable)), replace=False)):
            try:
                probes.append(probe_image(usable[i]))
            except BadImage:
                continue  # counted when the item is first decoded
        if not probes:
            raise _no_usable(spec, scan.root, [(usable[0], "none of the sampled files has a readable header")])
        native_size, native_ch = _native(probes)
        size, channels = size or native_size, channels or native_ch
    if bad:
        _warn_skipped(spec, scan.root, bad, len(files))
    dataset = LazyImageDataset(usable, usable_labels, size, channels, spec, str(scan.root))
    return DataBundle(
        name=spec,
        kind="image",
        shape=(channels, size, size),
        num_classes=len(scan.class_names),
        class_names=list(scan.class_names),
        x=None,
        y=None,
        dataset=dataset,
        skipped=len(bad),
    )
