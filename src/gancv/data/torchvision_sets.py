"""MNIST, Fashion-MNIST, CIFAR-10, SVHN and CelebA in torchvision's on-disk layout under ``data_root``.

Files already on disk are read directly into resident uint8 tensors (one array read, no
per-item decoding); CelebA (200k JPEGs) is lazy. Missing files trigger one download attempt
with torchvision's URLs and checksums, guarded by a quick reachability probe and a socket
timeout so an offline machine gets a clear :class:`GancvError` within seconds instead of
a hang. torchvision's dataset classes are *not* used to read CIFAR: they call plain
``pickle.load``; batches are read with the restricted unpickler in :mod:`.safe_pickle`.

Layout (what torchvision itself writes)::

    DATA_ROOT/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
    DATA_ROOT/FashionMNIST/raw/...same names...
    DATA_ROOT/cifar-10-batches-py/{data_batch_1..5,test_batch}
    DATA_ROOT/{train,test}_32x32.mat                      (SVHN)
    DATA_ROOT/celeba/img_align_celeba/*.jpg + list_eval_partition.txt
"""
from __future__ import annotations

import gzip
import socket
import struct
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlparse

import numpy as np
import torch

from ..errors import GancvError
from .core import DATASETS, DataBundle, LoadOptions, no_argument, resident_bundle, subset_indices
from .folders import LazyImageDataset
from .safe_pickle import load_array_pickle
from .transforms import fit_square_tensor, set_channels_tensor

PROBE_TIMEOUT_S = 5.0  # how long to wait for a TCP connection before calling the machine offline
SOCKET_TIMEOUT_S = 30.0  # per socket operation while downloading (not for the whole file)

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
DIGIT_CLASSES = [str(d) for d in range(10)]


# ---------------------------------------------------------------------------------------------
# downloading: one attempt, bounded in time


def reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """True if a TCP connection to ``url``'s host opens within ``timeout`` seconds.

    why a thread: DNS resolution ignores socket timeouts and can block for a long time on a
    machine without network; the daemon thread is abandoned if it does not answer in time.
    """
    parts = urlparse(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    ok: list[bool] = []

    def attempt() -> None:
        try:
            with socket.create_connection((parts.hostname, port), timeout=timeout):
                ok.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=attempt, name="gancv-net-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(ok)


@contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)  # why: urllib inside torchvision passes no timeout of its own
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def attempt_download(probe_url: str, fetch: Callable[[], None]) -> None:
    """Run ``fetch`` once if ``probe_url``'s host answers; raise ``OSError`` when offline."""
    if not reachable(probe_url):
        raise OSError(f"cannot reach {urlparse(probe_url).hostname} (offline?)")
    with _socket_timeout(SOCKET_TIMEOUT_S):
        fetch()


def _missing(name: str, where: Path, opts: LoadOptions, cause: str | None) -> GancvError:
    tail = f"put the files there or set data_root=PATH (data_root is now {str(opts.data_root)!r})"
    if cause is None:
        return GancvError(f"{name} not found under {where}; {tail}")
    return GancvError(f"{name} not found under {where} and could not be downloaded ({cause}); {tail}")


def _ensure(name: str, where: Path, present: Callable[[], bool], probe_url: str,
            fetch: Callable[[], None], opts: LoadOptions) -> None:
    """Make ``present()`` true by downloading once, or raise the not-found :class:`GancvError`."""
    if present():
        return
    if not opts.download:
        raise _missing(name, where, opts, None)
    try:
        attempt_download(probe_url, fetch)
    except Exception as exc:  # noqa: BLE001 - network, checksum, disk: all mean "not available"
        text = str(exc).strip()
        # why the first line only: user errors are one line (torchvision's mirror errors are many).
        raise _missing(name, where, opts, text.splitlines()[0] if text else type(exc).__name__) from None
    if not present():
        raise _missing(name, where, opts, "the download did not produce the expected files")


def _finish(name: str, images: np.ndarray, labels: np.ndarray, classes: list[str], opts: LoadOptions) -> DataBundle:
    """uint8 (N, C, H, W) + labels -> subset, resize, channel conversion, bundle."""
    idx = subset_indices(len(images), opts.max_items, opts.seed)
    x = torch.from_numpy(np.ascontiguousarray(images[idx]))
    x = fit_square_tensor(x, opts.image_size or x.shape[-1])
    y = torch.from_numpy(labels[idx].astype(np.int64))
    return resident_bundle(name, set_channels_tensor(x, opts.channels), y, classes)


# ---------------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST: IDX files

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (raw or ``.gz``) as a numpy array; malformed files raise GancvError."""
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise GancvError(f"{path}: cannot read the IDX file ({exc}); delete it and download it again") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise GancvError(f"{path}: not an IDX file (bad magic number); delete it and download it again")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise GancvError(f"{path}: IDX header is cut short; delete it and download it again")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise GancvError(
            f"{path}: IDX file holds {len(data) - header} data bytes but its header promises {expected} "
            "(truncated download?); delete it and download it again"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)


def _idx_set(name: str, folder: str, tv_class_name: str, classes: list[str], opts: LoadOptions) -> DataBundle:
    from torchvision import datasets
    from torchvision.datasets.utils import download_and_extract_archive

    raw = Path(opts.data_root) / folder / "raw"
    split = "train" if opts.train else "t10k"
    stems = [f"{split}-images-idx3-ubyte", f"{split}-labels-idx1-ubyte"]

    def locate(stem: str) -> Path | None:
        for candidate in (raw / stem, raw / f"{stem}.gz"):
            if candidate.is_file():
                return candidate
        return None

    tv_class = getattr(datasets, tv_class_name)

    def fetch() -> None:
        for filename, md5 in tv_class.resources:
            errors = []
            for mirror in tv_class.mirrors:
                try:
                    download_and_extract_archive(f"{mirror}{filename}", download_root=str(raw), filename=filename, md5=md5)
                    break
                except Exception as exc:  # noqa: BLE001 - try the next mirror
                    errors.append(f"{mirror}: {exc}")
            else:
                raise OSError(f"{filename}: " + "; ".join(errors))

    _ensure(name, raw.parent, lambda: all(locate(s) for s in stems), tv_class.mirrors[0], fetch, opts)
    images_path, labels_path = (locate(s) for s in stems)
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8 or labels.ndim != 1 or len(images) != len(labels):
        raise GancvError(
            f"{images_path}: expected uint8 images (N, H, W) and N labels, found {images.dtype} {images.shape} "
            f"and {labels.shape} labels; delete the files and download them again"
        )
    return _finish(name, images[:, None], labels, classes, opts)


@DATASETS.register("mnist", description="MNIST handwritten digits 28x28 gray, 10 classes (torchvision files under data_root)")
def load_mnist(arg: str, opts: LoadOptions) -> DataBundle:
    no_argument("mnist", arg)
    return _idx_set("mnist", "MNIST", "MNIST", DIGIT_CLASSES, opts)


@DATASETS.register("fashion-mnist", description="Fashion-MNIST clothing 28x28 gray, 10 classes (torchvision files under data_root)")
def load_fashion_mnist(arg: str, opts: LoadOptions) -> DataBundle:
    no_argument("fashion-mnist", arg)
    return _idx_set("fashion-mnist", "FashionMNIST", "FashionMNIST", FASHION_CLASSES, opts)


# ---------------------------------------------------------------------------------------------
# CIFAR-10: python pickles, read with the restricted unpickler


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    entry = load_array_pickle(path)
    if not isinstance(entry, dict):
        raise GancvError(f"{path}: expected a dict of arrays (a CIFAR batch), found {type(entry).__name__}")
    # why: Python 2 pickles read with latin1 have str keys, Python 3 ones may have bytes keys.
    entry = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}
    data, labels = entry.get("data"), entry.get("labels", entry.get("fine_labels"))
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels is None:
        raise GancvError(f"{path}: not a CIFAR-10 batch (needs 'data' of shape (N, 3072) and 'labels')")
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (len(data),) or (labels.size and (labels.min() < 0 or labels.max() > 9)):
        raise GancvError(f"{path}: labels do not match the images (need {len(data)} labels in 0..9)")
    return data.astype(np.uint8, copy=False).reshape(-1, 3, 32, 32), labels


@DATASETS.register("cifar10", description="CIFAR-10 32x32 colour photos, 10 classes (torchvision files under data_root)")
def load_cifar10(arg: str, opts: LoadOptions) -> DataBundle:
    no_argument("cifar10", arg)
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import download_and_extract_archive

    root = Path(opts.data_root)
    folder = root / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] if opts.train else ["test_batch"]

    def fetch() -> None:
        download_and_extract_archive(CIFAR10.url, str(root), filename=CIFAR10.filename, md5=CIFAR10.tgz_md5)

    _ensure("cifar10", folder, lambda: all((folder / n).is_file() for n in names), CIFAR10.url, fetch, opts)
    batches = [_cifar_batch(folder / n) for n in names]
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    return _finish("cifar10", images, labels, CIFAR10_CLASSES, opts)


# ---------------------------------------------------------------------------------------------
# SVHN: MATLAB v5 files (scipy reads them without executing anything)


@DATASETS.register("svhn", description="SVHN street-view house numbers 32x32 colour, 10 classes (torchvision files under data_root)")
def load_svhn(arg: str, opts: LoadOptions) -> DataBundle:
    no_argument("svhn", arg)
    from scipy.io import loadmat
    from torchvision.datasets import SVHN
    from torchvision.datasets.utils import download_url

    root = Path(opts.data_root)
    url, filename, md5 = SVHN.split_list["train" if opts.train else "test"]
    path = root / filename
    _ensure("svhn", path, path.is_file, url, lambda: download_url(url, str(root), filename, md5), opts)
    try:
        mat = loadmat(str(path), variable_names=["X", "y"])
        images, labels = np.asarray(mat["X"]), np.asarray(mat["y"]).reshape(-1)
    except Exception as exc:  # noqa: BLE001 - scipy raises many types on malformed files
        raise GancvError(f"{path}: not a readable SVHN .mat file ({exc}); delete it and download it again") from None
    if images.ndim != 4 or images.shape[:3] != (32, 32, 3) or images.shape[3] != len(labels):
        raise GancvError(f"{path}: expected X of shape (32, 32, 3, N) and N labels, found {images.shape} and {labels.shape}")
    labels = labels.astype(np.int64) % 10  # why: SVHN stores the digit 0 as label 10
    images = images.astype(np.uint8, copy=False).transpose(3, 2, 0, 1)  # (H, W, C, N) -> (N, C, H, W)
    return _finish("svhn", images, labels, DIGIT_CLASSES, opts)


# ---------------------------------------------------------------------------------------------
# CelebA: 202,599 aligned JPEGs, decoded lazily

CELEBA_SIZE = 178  # the aligned crops are 178x218; the square center crop is 178x178


@DATASETS.register("celeba", description="CelebA aligned faces, center-cropped 178 and resized, unlabelled, lazy (torchvision files under data_root)")
def load_celeba(arg: str, opts: LoadOptions) -> DataBundle:
    no_argument("celeba", arg)
    from torchvision.datasets import CelebA

    base = Path(opts.data_root) / "celeba"
    images_dir = base / "img_align_celeba"
    partition = base / "list_eval_partition.txt"

    def present() -> bool:
        return images_dir.is_dir() and any(images_dir.glob("*.jpg"))

    def fetch() -> None:
        CelebA(str(opts.data_root), split="all", target_type="attr", download=True)

    _ensure("celeba", images_dir, present, "https://drive.google.com/", fetch, opts)
    if partition.is_file():
        want = "0" if opts.train else "2"  # 0 train, 1 validation, 2 test
        names = []
        for line in partition.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] == want:
                names.append(parts[0])
        files = [images_dir / n for n in names]
    elif opts.train:
        files = sorted(images_dir.glob("*.jpg"))  # no split file: every image is training data
    else:
        raise GancvError(f"celeba test split needs {partition}; put torchvision's list_eval_partition.txt there")
    if not files:
        raise GancvError(f"celeba: no images of the {'train' if opts.train else 'test'} split found in {images_dir}")
    files = [files[i] for i in subset_indices(len(files), opts.max_items, opts.seed)]
    size, channels = opts.image_size or CELEBA_SIZE, opts.channels or 3
    dataset = LazyImageDataset(files, [-1] * len(files), size, channels, "celeba", "celeba")
    return DataBundle("celeba", "image", (channels, size, size), 0, [], None, None, dataset)
