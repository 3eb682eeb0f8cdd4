"""``medmnist:FILE.npz``: a MedMNIST archive (``{train,val,test}_{images,labels}`` arrays).

Read with ``allow_pickle=False``, so an archive carrying pickled objects is refused rather
than executed. Multi-label sets (e.g. ChestMNIST, labels of shape ``(N, 14)``) load
unlabelled, because a single class index would misrepresent them.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import GancvError
from .core import DATASETS, DataBundle, LoadOptions, resident_bundle, subset_indices
from .transforms import fit_square_tensor, set_channels_tensor


@DATASETS.register("medmnist", description="medmnist:FILE.npz - a MedMNIST archive (2-D sets, train/test splits)")
def load_medmnist(arg: str, opts: LoadOptions) -> DataBundle:
    spec = f"medmnist:{arg}"
    if not arg.strip():
        raise GancvError("data spec 'medmnist' needs a file: use medmnist:FILE.npz (e.g. medmnist:data/pathmnist.npz)")
    try:
        path = Path(arg).expanduser()
        is_file = path.is_file()
    except (OSError, ValueError, RuntimeError):
        raise GancvError(f"{spec}: {arg!r} is not a usable path; give medmnist:FILE.npz") from None
    if not is_file:
        raise GancvError(f"{spec}: file {path} does not exist; download the MedMNIST .npz and give its path")
    split = "train" if opts.train else "test"
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = set(archive.files)
            if f"{split}_images" not in keys or f"{split}_labels" not in keys:
                raise GancvError(
                    f"{spec}: {path} has no {split}_images/{split}_labels arrays (found: {', '.join(sorted(keys)) or 'none'}); "
                    "is it a MedMNIST file?"
                )
            images, labels = archive[f"{split}_images"], archive[f"{split}_labels"]
            # why all splits: the class count must not change between train and test loads.
            top_label = max((int(archive[k].max()) for k in keys if k.endswith("_labels") and archive[k].size), default=-1)
    except GancvError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise GancvError(f"{spec}: {path} is not a readable .npz archive ({exc}); download it again") from None
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] not in (1, 3)):
        raise GancvError(f"{spec}: expected uint8 images (N, H, W) or (N, H, W, 3), found {images.dtype} {images.shape}")
    x = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
    labels = labels.reshape(len(labels), -1)
    if len(labels) != len(x):
        raise GancvError(f"{spec}: {len(x)} images but {len(labels)} labels")
    single = labels.shape[1] == 1
    idx = subset_indices(len(x), opts.max_items, opts.seed)
    xt = torch.from_numpy(np.ascontiguousarray(x[idx]))
    xt = set_channels_tensor(fit_square_tensor(xt, opts.image_size or xt.shape[-1]), opts.channels)
    if not single or len(labels) == 0:
        return resident_bundle(spec, xt, None)
    flat = labels[:, 0].astype(np.int64)
    if flat.min() < 0:
        raise GancvError(f"{spec}: negative class labels in {path}")
    num_classes = max(top_label, int(flat.max())) + 1
    return resident_bundle(spec, xt, torch.from_numpy(flat[idx]), [str(k) for k in range(num_classes)])
