"""Fixtures for the data tests: tiny data sets written in the real on-disk formats.

Every test here runs offline: the autouse ``no_downloads`` fixture replaces the one function
that could reach the network, so a test that would download fails loudly instead.
"""
from __future__ import annotations

import gzip
import pickle
import struct
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import gancv.data.torchvision_sets as tv_sets

REAL_ATTEMPT_DOWNLOAD = tv_sets.attempt_download  # kept before the autouse fixture replaces it


@pytest.fixture
def real_attempt_download():
    return REAL_ATTEMPT_DOWNLOAD


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    """Any download attempt raises, as it would on an offline machine."""

    def refuse(probe_url, fetch):
        raise OSError("tests never download (offline?)")

    monkeypatch.setattr(tv_sets, "attempt_download", refuse)


# ---------------------------------------------------------------------------------------------
# file writers, shared through the `fakes` fixture


def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file exactly as yann.lecun.com serves it (ubyte data), gzipped if the name ends .gz."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)


def write_mnist(root: Path, folder: str = "MNIST", gz: bool = True, n_train: int = 20, n_test: int = 10) -> dict:
    """torchvision's layout: ROOT/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]."""
    rng = np.random.default_rng(1)
    out = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        suffix = ".gz" if gz else ""
        write_idx(root / folder / "raw" / f"{split}-images-idx3-ubyte{suffix}", images)
        write_idx(root / folder / "raw" / f"{split}-labels-idx1-ubyte{suffix}", labels)
        out[split] = (images, labels)
    return out


class Py2Pickler(pickle._Pickler):
    """Writes byte strings the way Python 2's cPickle wrote ``str`` (the real CIFAR files)."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def write_cifar_batch(path: Path, images: np.ndarray, labels: list[int], style: str) -> None:
    """``style``: "py2" (protocol 2, numpy.core globals, str data; what the real download holds),
    "py3" (plain pickle.dump, bytes keys) or "py3-proto5" (arrays via _frombuffer)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = images.reshape(len(images), -1)
    if style == "py2":
        import io

        buf = io.BytesIO()
        Py2Pickler(buf, protocol=2).dump({b"batch_label": b"fake batch", b"labels": labels, b"data": data,
                                          b"filenames": [b"x.png"] * len(labels)})
        raw = buf.getvalue().replace(b"cnumpy._core.multiarray\n_reconstruct\n", b"cnumpy.core.multiarray\n_reconstruct\n")
        assert b"numpy.core.multiarray" in raw and b"_codecs" not in raw
        path.write_bytes(raw)
    elif style == "py3":
        with open(path, "wb") as fh:
            pickle.dump({b"data": data, b"labels": labels}, fh)
    else:
        with open(path, "wb") as fh:
            pickle.dump({"data": data, "labels": labels}, fh, protocol=5)


def write_cifar(root: Path, per_batch: int = 4, n_test: int = 3) -> dict:
    rng = np.random.default_rng(2)
    folder = root / "cifar-10-batches-py"
    train_images, train_labels = [], []
    styles = ["py2", "py3", "py3-proto5", "py2", "py3"]
    for i in range(1, 6):
        images = rng.integers(0, 256, (per_batch, 3, 32, 32), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        write_cifar_batch(folder / f"data_batch_{i}", images, labels, styles[i - 1])
        train_images.append(images)
        train_labels += labels
    test_images = rng.integers(0, 256, (n_test, 3, 32, 32), dtype=np.uint8)
    test_labels = [int(v) for v in rng.integers(0, 10, n_test)]
    write_cifar_batch(folder / "test_batch", test_images, test_labels, "py2")
    return {"train": (np.concatenate(train_images), train_labels), "test": (test_images, test_labels)}


def write_svhn(root: Path, n: int = 12) -> np.ndarray:
    from scipy.io import savemat

    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    labels = (np.arange(n) % 10 + 1).reshape(n, 1)  # SVHN: digits 1..10, where 10 means 0
    root.mkdir(parents=True, exist_ok=True)
    savemat(root / "train_32x32.mat", {"X": images, "y": labels})
    savemat(root / "test_32x32.mat", {"X": images[..., :4], "y": labels[:4]})
    return images


def write_celeba(root: Path, n: int = 6) -> None:
    folder = root / "celeba" / "img_align_celeba"
    folder.mkdir(parents=True)
    lines = []
    for i in range(1, n + 1):
        img = np.zeros((218, 178, 3), dtype=np.uint8)
        img[20:198] = 40 * i  # the square the center crop keeps
        Image.fromarray(img).save(folder / f"{i:06d}.jpg", quality=95)
        lines.append(f"{i:06d}.jpg {0 if i <= n - 2 else (1 if i == n - 1 else 2)}")
    (root / "celeba" / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")


def write_medmnist(path: Path) -> None:
    rng = np.random.default_rng(4)
    arrays = {}
    for split, n in (("train", 12), ("val", 4), ("test", 6)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 4).reshape(n, 1).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)


def png_bomb(path: Path, width: int = 100_000, height: int = 100_000) -> None:
    """A 100-byte PNG whose header declares a 10-gigapixel canvas (a decompression bomb)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))


def noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def write_bad_folder(root: Path) -> dict[str, list[str]]:
    """Every kind of file a scraped folder holds; returns which names are good, converted, bad."""
    root.mkdir(parents=True, exist_ok=True)
    Image.fromarray(noise(30, 40, 1)).save(root / "good.png")
    Image.fromarray(noise(40, 30, 2)).save(root / "good.jpg", quality=90)
    Image.fromarray(noise(32, 32, 3)).convert("CMYK").save(root / "cmyk.jpg")
    gray16 = np.random.default_rng(4).integers(0, 65536, (32, 32)).astype(np.uint16)
    Image.fromarray(gray16).save(root / "gray16.png")
    Image.fromarray(noise(32, 32, 5)).convert("P").save(root / "palette.png")
    rgba = np.dstack([noise(32, 32, 6), np.full((32, 32), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(root / "alpha.png")
    (root / "empty.png").write_bytes(b"")
    (root / "notes.png").write_text("this is a text file, not a picture\n")
    for name, fmt in (("truncated.jpg", "JPEG"), ("truncated.png", "PNG")):
        Image.fromarray(noise(64, 64, 7)).save(root / name, format=fmt)
        data = (root / name).read_bytes()
        (root / name).write_bytes(data[: len(data) // 2])
    png_bomb(root / "bomb.png")
    (root / "readme.txt").write_text("not an image extension: never looked at\n")
    return {
        "good": ["good.png", "good.jpg"],
        "converted": ["cmyk.jpg", "gray16.png", "palette.png", "alpha.png"],
        "bad": ["empty.png", "notes.png", "truncated.jpg", "truncated.png", "bomb.png"],
    }


@pytest.fixture
def fakes():
    """The writers above, for tests that build their own layouts."""
    return SimpleNamespace(
        write_idx=write_idx, write_mnist=write_mnist, write_cifar=write_cifar, write_cifar_batch=write_cifar_batch,
        write_svhn=write_svhn, write_celeba=write_celeba, write_medmnist=write_medmnist, png_bomb=png_bomb,
        noise=noise, write_bad_folder=write_bad_folder,
    )


@pytest.fixture
def image_folder(tmp_path) -> Path:
    """An unlabelled folder of six good RGB images of different sizes."""
    root = tmp_path / "imgs"
    root.mkdir()
    for i, (h, w) in enumerate([(30, 40), (40, 30), (24, 24), (50, 60), (36, 36), (28, 42)]):
        Image.fromarray(noise(h, w, i)).save(root / f"img{i}.png")
    return root


@pytest.fixture
def example_specs(tmp_path):
    """For every registered prefix, a spec (and data_root) that loads offline.

    why a table: the parametrised tests must cover every registry entry; a loader added
    without an example here makes ``test_every_dataset_has_an_example`` fail.
    """
    root = tmp_path / "root"
    write_mnist(root, "MNIST")
    write_mnist(root, "FashionMNIST", gz=False)
    write_cifar(root)
    write_svhn(root)
    write_celeba(root)
    write_medmnist(root / "pathmnist.npz")
    folder = tmp_path / "folder"
    for cls in ("a", "b"):
        (folder / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(noise(20 + i, 24, i)).save(folder / cls / f"{i}.png")
    paired, unpaired = tmp_path / "paired", tmp_path / "unpaired"
    for side in ("A", "B"):
        (paired / side).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(noise(20, 24, i + (10 if side == "B" else 0))).save(paired / side / f"{i}.png")
    for side in ("trainA", "trainB"):
        (unpaired / side).mkdir(parents=True)
        for i in range(3 if side == "trainA" else 4):
            Image.fromarray(noise(22, 22, i)).save(unpaired / side / f"{i}.jpg")
    return {
        "paired": f"paired:{paired}",
        "unpaired": f"unpaired:{unpaired}",
        "photo-pairs": "photo-pairs:cartoon",
        "photo-unpaired": "photo-unpaired:gray",
        "celeba": "celeba",
        "cifar10": "cifar10",
        "digits": "digits",
        "faces": "faces",
        "fashion-mnist": "fashion-mnist",
        "folder": f"folder:{folder}",
        "medmnist": f"medmnist:{root / 'pathmnist.npz'}",
        "mnist": "mnist",
        "photos": "photos",
        "stacked-digits": "stacked-digits",
        "svhn": "svhn",
        "toy2d": "toy2d:ring",
    }, root
