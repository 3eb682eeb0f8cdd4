"""Synthetic labelled data sets from a class-conditional generator (``gancv augment``).

Layout: ``OUT/<class name>/<class>_<index>.png`` (torchvision ImageFolder, and gancv's own
``folder:OUT`` data spec) plus ``OUT/manifest.csv`` with ``file,label,seed,model``. Each image
has its own seed, so any row can be regenerated alone: ``model.generate(model.noise(1, seed), label)``.
"""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Callable

import torch

from .errors import GancvError
from .training.checkpoint import atomic_write_text


def _folder_name(name: str, index: int) -> str:
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return clean or f"class_{index}"


def augment(run: str | Path, per_class: int, out: str | Path, *, seed: int = 0, truncation: float | None = None,
            device: str = "auto", log: Callable[[str], None] | None = None) -> Path:
    """Write ``per_class`` samples of every class of a conditional run; returns the manifest path."""
    from .tasks.inference import load

    if not isinstance(per_class, int) or per_class < 1:
        raise GancvError(f"--per-class must be a positive integer, got {per_class!r}")
    model = load(run, device=device)
    from .tasks.inference import GenerativeModel

    if not isinstance(model, GenerativeModel) or model.kind != "image":
        raise GancvError(f"{run} is not an image generation model; augment needs a class-conditional generator")
    if not model.conditional:
        raise GancvError(f"{run} is unconditional: its samples have no labels. Train with conditional=true "
                         "(e.g. gancv train --preset dcgan-digits conditional=true)")
    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise GancvError(f"--out {out} exists and is not an empty directory; pick a new one so old files don't mix in")
    if not out.parent.is_dir():
        raise GancvError(f"--out {out}: the directory {out.parent} does not exist; create it first")
    from .visual import save_image

    names = model.class_names or [str(c) for c in range(model.num_classes)]
    folders = [_folder_name(n, i) for i, n in enumerate(names)]
    if len(set(folders)) != len(folders):
        folders = [f"{i:03d}_{f}" for i, f in enumerate(folders)]
    rows = []
    total = per_class * model.num_classes
    for start in range(0, total, 256):
        idx = range(start, min(start + 256, total))
        # One seed per image: seed + global index, so a row is reproducible on its own.
        z = torch.cat([model.noise(1, seed + i, truncation) for i in idx])
        labels = torch.tensor([i // per_class for i in idx], device=model.device)
        images = model.generate(z, labels)
        for i, img in zip(idx, images):
            label = i // per_class
            rel = Path(folders[label]) / f"{folders[label]}_{i % per_class:06d}.png"
            (out / rel.parent).mkdir(parents=True, exist_ok=True)
            save_image(img, out / rel)
            rows.append((rel.as_posix(), label, seed + i, str(model.path)))
        if log:
            log(f"{min(start + 256, total)}/{total} images")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["file", "label", "seed", "model"])
    writer.writerows(rows)
    manifest = out / "manifest.csv"
    atomic_write_text(manifest, buf.getvalue())  # written last: its presence means the set is complete
    return manifest
