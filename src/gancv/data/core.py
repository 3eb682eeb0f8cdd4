"""The data contract: :class:`DataBundle`, the ``DATASETS`` registry and :func:`load_data`.

A data spec is ``prefix`` or ``prefix:arg`` (``digits``, ``toy2d:ring``, ``folder:/x/y``). The
prefix names a loader in :data:`DATASETS`; the loader gets the argument and the shared
:class:`LoadOptions` and returns a :class:`DataBundle`. Every dataset, resident or lazy, is
reached through the same ``bundle.dataset`` whose items are ``(x, y)``:

* images: ``x`` uint8 ``(C, H, W)`` in [0, 255], points: ``x`` float32 ``(2,)``;
* ``y`` int64 scalar, ``-1`` when the set is unlabelled.

Small sets are also *resident*: ``bundle.x`` / ``bundle.y`` hold every item as one tensor, so a
training loop can move them to the GPU once and index batches there (no DataLoader overhead).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import GancvError, UnknownNameError
from ..registry import Registry

DATASETS = Registry("dataset")
"""One loader per spec prefix; each is called as ``loader(arg: str, opts: LoadOptions)``."""


@dataclass(frozen=True)
class LoadOptions:
    """What every loader is asked for; ``None`` sizes mean the dataset's native ones."""

    image_size: int | None = None
    channels: int | None = None
    data_root: str | os.PathLike = "data"
    train: bool = True
    max_items: int | None = None
    seed: int = 0
    # why: `gancv data check` must report what is on disk without fetching anything.
    download: bool = True


class ResidentDataset(Dataset):
    """Items of tensors already in memory: ``(x[i], y[i])`` with ``y = -1`` when unlabelled."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor | None):
        if y is not None and len(y) != len(x):
            raise ValueError(f"x has {len(x)} items but y has {len(y)}")
        self.x = x
        self.y = y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        label = self.y[index] if self.y is not None else torch.tensor(-1, dtype=torch.int64)
        return self.x[index], label


@dataclass
class DataBundle:
    """A loaded data set plus what a model needs to know about it (shape, classes)."""

    name: str
    kind: str  # "image" or "points"
    shape: tuple[int, ...]  # (C, H, W) for images, (2,) for points
    num_classes: int  # 0 when unlabelled
    class_names: list[str]
    x: torch.Tensor | None  # resident data, None when lazy
    y: torch.Tensor | None  # int64 labels when resident and labelled
    dataset: Dataset = field(repr=False)
    skipped: int = 0  # bad files skipped while loading
    # Task-specific companions: "pair_channels" (paired sets stack A and B along channels, so an
    # item is (2C, H, W) and both halves share the stream's shuffling), "B" (the second domain of
    # an unpaired set, a DataBundle of its own drawn by the task's second stream).
    extra: dict = field(default_factory=dict)

    @property
    def image_shape(self) -> tuple[int, ...]:
        """Shape of one image: ``shape``, or one half of it for paired (channel-stacked) sets."""
        c = self.extra.get("pair_channels")
        return (int(c), *self.shape[1:]) if c else self.shape

    def __post_init__(self) -> None:
        # why: a loader bug caught here names the dataset instead of surfacing as a shape
        # mismatch deep inside a model.
        if self.kind not in ("image", "points"):
            raise ValueError(f"{self.name}: kind must be 'image' or 'points', not {self.kind!r}")
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"{self.name}: {self.num_classes} classes but {len(self.class_names)} names")
        self.shape = tuple(int(s) for s in self.shape)
        if self.x is not None:
            want = torch.uint8 if self.kind == "image" else torch.float32
            if self.x.dtype != want or tuple(self.x.shape[1:]) != self.shape:
                raise ValueError(
                    f"{self.name}: resident x is {self.x.dtype} {tuple(self.x.shape)}, "
                    f"expected {want} (N, {', '.join(map(str, self.shape))})"
                )
        if self.y is not None and (self.y.dtype != torch.int64 or self.y.ndim != 1):
            raise ValueError(f"{self.name}: labels must be int64 (N,), got {self.y.dtype} {tuple(self.y.shape)}")

    def __len__(self) -> int:
        return len(self.dataset)


def resident_bundle(
    name: str,
    x: torch.Tensor,
    y: torch.Tensor | None,
    class_names: list[str] | None = None,
    *,
    kind: str = "image",
    skipped: int = 0,
) -> DataBundle:
    """A :class:`DataBundle` whose items all live in ``x`` (and ``y`` when labelled)."""
    names = list(class_names or [])
    return DataBundle(
        name=name,
        kind=kind,
        shape=tuple(x.shape[1:]),
        num_classes=len(names),
        class_names=names,
        x=x,
        y=y,
        dataset=ResidentDataset(x, y),
        skipped=skipped,
    )


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images in [0, 255] -> float32 in [-1, 1]; float input (points) is returned unchanged."""
    if x.dtype == torch.uint8:
        return x.to(torch.float32).div_(127.5).sub_(1.0)
    if x.is_floating_point():
        return x
    raise TypeError(f"to_float expects uint8 images or float points, got {x.dtype}")


def rng_for(seed: int, *stream: int) -> np.random.Generator:
    """A numpy generator for ``seed`` and a stream id; any Python int is a valid seed.

    why the modulo: numpy's SeedSequence rejects negative entropy, but ``seed=-1`` is a
    perfectly good user choice.
    """
    return np.random.default_rng([int(seed) % 2**64, *stream])


def subset_indices(n: int, max_items: int | None, seed: int) -> np.ndarray:
    """Indices of at most ``max_items`` of ``n`` items: a seeded random subset kept in file order.

    why random and not the first ``max_items``: many sets are stored sorted by class (or by
    digit sequence), and a prefix would silently drop classes.
    """
    if max_items is None or max_items >= n:
        return np.arange(n)
    rng = rng_for(seed, 0x5EB5E7)
    return np.sort(rng.choice(n, size=max_items, replace=False))


def no_argument(prefix: str, arg: str) -> None:
    """Loaders that take no ``:arg`` call this so ``digits:foo`` is an error, not ignored."""
    if arg:
        raise GancvError(f"data spec {prefix}:{arg!r}: {prefix!r} takes no argument; use '{prefix}'")


def parse_spec(spec: object) -> tuple[str, str]:
    """Split ``prefix[:arg]`` and check the prefix is registered; raises only :class:`GancvError`."""
    if not isinstance(spec, str) or not spec.strip():
        raise GancvError(
            f"data spec must be a name like 'digits' or 'folder:PATH', got {spec!r}; "
            f"choose one of: {', '.join(DATASETS.names())}"
        )
    prefix, _, arg = spec.partition(":")
    prefix = prefix.strip()
    if prefix not in DATASETS:
        hint = f"; did you mean 'folder:{spec}'?" if is_dir(spec) else ""
        raise UnknownNameError(
            f"unknown dataset {prefix!r} in data spec {spec!r}; choose one of: {', '.join(DATASETS.names())}{hint}"
        )
    return prefix, arg


def is_dir(path: str) -> bool:
    """``os.path.isdir`` that answers False instead of raising on impossible names."""
    try:
        return os.path.isdir(path)
    except (OSError, ValueError):  # why: null bytes / unencodable names are not directories
        return False


def _check_options(opts: LoadOptions) -> None:
    def is_int(v: object) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    if opts.image_size is not None and not (is_int(opts.image_size) and 1 <= opts.image_size <= 8192):
        raise GancvError(f"image_size={opts.image_size!r} is not valid; use an integer from 1 to 8192 (e.g. 32, 64)")
    if opts.channels is not None and not (is_int(opts.channels) and opts.channels in (1, 3)):
        raise GancvError(f"channels={opts.channels!r} is not valid; use 1 (grayscale) or 3 (RGB)")
    if opts.max_items is not None and not (is_int(opts.max_items) and opts.max_items >= 1):
        raise GancvError(f"max_items={opts.max_items!r} is not valid; use a positive integer or leave it unset")
    if not is_int(opts.seed):
        raise GancvError(f"seed={opts.seed!r} is not valid; use an integer")
    if not isinstance(opts.data_root, (str, os.PathLike)):
        raise GancvError(f"data_root={opts.data_root!r} is not valid; use a directory path")


def load_with(spec: str, opts: LoadOptions) -> DataBundle:
    """Parse ``spec`` and call its registered loader with ``opts`` (``load_data`` minus the kwargs)."""
    _check_options(opts)
    prefix, arg = parse_spec(spec)
    loader: Callable[[str, LoadOptions], DataBundle] = DATASETS.get(prefix)
    bundle = loader(arg, opts)
    bundle.name = spec
    return bundle


def load_data(
    spec: str,
    *,
    image_size: int | None = None,
    channels: int | None = None,
    data_root: str = "data",
    train: bool = True,
    max_items: int | None = None,
    seed: int = 0,
) -> DataBundle:
    """Load the data set named by ``spec`` (see ``DATASETS.describe()``).

    ``image_size``/``channels`` default to the set's native ones; images are resized with
    antialiasing so the shorter side is ``image_size`` and center-cropped to a square.
    ``channels=1`` converts to grayscale, ``channels=3`` replicates gray to RGB. Both are
    ignored for point sets. ``max_items`` caps the number of items (a seeded subset for
    stored sets, the sample size for generated ones). Anything wrong with the spec or the
    files raises :class:`~gancv.errors.GancvError` naming what to fix.
    """
    opts = LoadOptions(image_size, channels, data_root, bool(train), max_items, seed)
    return load_with(spec, opts)
