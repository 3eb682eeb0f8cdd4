"""Does a class-conditional generator draw the class it is asked for?"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from . import BENCHMARKS


def class_accuracy(model, per_class: int, seed: int = 0) -> dict:
    """Sample ``per_class`` images of every class and score them with the real-digit classifier."""
    import torch

    from ..metrics.digits import predict_proba

    labels = torch.arange(model.num_classes).repeat_interleave(per_class)
    images = model.sample(len(labels), labels=labels, seed=seed)
    proba = predict_proba(images)
    pred = proba.argmax(1)
    correct = pred == labels.numpy()
    per = [float(correct[labels.numpy() == c].mean()) for c in range(model.num_classes)]
    return {"per_class_accuracy": [round(a, 3) for a in per], "mean_accuracy": round(float(np.mean(per)), 4),
            "min_class_accuracy": round(min(per), 3), "confident": round(float((proba.max(1) >= 0.8).mean()), 4),
            "samples_per_class": per_class}


def real_accuracy(image_size: int) -> float:
    """The scorer on the real digits at the same size: the ceiling samples are judged against
    (optimistic, since the classifier was fitted on these very digits)."""
    from ..data import load_data
    from ..metrics.digits import predict_proba

    real = load_data("digits", image_size=image_size, channels=1)
    return round(float((predict_proba(real.x).argmax(1) == real.y.numpy()).mean()), 4)


@BENCHMARKS.register("cgan-digits", description="train cgan-digits; per-class accuracy of --class samples by a real-digit classifier")
def cgan_digits(quick: bool = False, device: str = "auto", log: Callable[[str], None] | None = None) -> dict:
    from ..api import load, train
    from ..config import make_config

    overrides = [f"device={device}", "progress=false"] + (["steps=30", "batch_size=32", "log_every=10", "checkpoint_every=30"] if quick else [])
    cfg = make_config("cgan-digits", overrides)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        train(cfg, out=Path(tmp) / "run", log=log)
        seconds = time.perf_counter() - t0
        model = load(Path(tmp) / "run", device=device)
        score = class_accuracy(model, per_class=10 if quick else 100)
    score["real_digits_accuracy"] = real_accuracy(cfg.image_size)
    return {"benchmark": "cgan-digits", "preset": "cgan-digits", "steps": cfg.steps, "batch_size": cfg.batch_size,
            "image_size": cfg.image_size, "generator": cfg.generator.name, "discriminator": cfg.discriminator.name,
            "quick": quick, "device": str(model.device), "train_seconds": round(seconds, 1),
            "chance_accuracy": 0.1, **score}
