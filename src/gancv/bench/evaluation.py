"""Benchmarks of the evaluation tools: the FID floor on digits features, and data augmentation."""
from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import BENCHMARKS

Log = Callable[[str], None]


def _quiet(msg: str) -> None:
    return None


def _train_run(overrides: list[str], out: Path) -> Path:
    from ..api import train
    from ..config import make_config

    return train(make_config(None, overrides), out=out)


@BENCHMARKS.register("fid-floor", description="digits-feature FID: real half vs half < dcgan-digits < noise; 10k-sample FID time")
def fid_floor(quick: bool = False, device: str = "auto", log: Log | None = None) -> dict:
    from ..config import make_config
    from ..data import load_data
    from ..metrics.classifier import classifier_for_data
    from ..metrics.evaluate import evaluate_images
    from ..metrics.features import create_extractor
    from ..metrics.scores import fid
    from ..tasks.inference import load

    log = log or _quiet
    size = 16 if quick else 32
    timed_n = 2000 if quick else 10_000
    overrides = ["device=" + device, "progress=false", f"image_size={size}"]
    overrides += ["steps=100", "generator.width=8", "discriminator.width=8", "checkpoint_every=100"] if quick else []
    cfg = make_config("dcgan-digits", overrides)
    t0 = time.perf_counter()
    classifier_for_data("digits", size, 1, log=log)  # trained once per machine; timed separately
    classifier_seconds = time.perf_counter() - t0
    real = load_data("digits", image_size=size, channels=1).x
    perm = torch.randperm(len(real), generator=torch.Generator().manual_seed(0))
    half_a, half_b = real[perm[: len(real) // 2]], real[perm[len(real) // 2 :]]
    n = len(half_a)
    extractor = create_extractor("digits", size=size, channels=1)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        from ..api import train

        train(cfg, out=Path(tmp) / "run")
        train_seconds = time.perf_counter() - t0
        model = load(Path(tmp) / "run", device=device)
        fake = model.sample(n, seed=1)
        t0 = time.perf_counter()
        many = model.sample(timed_n, seed=2)
        sample_seconds = time.perf_counter() - t0
    noise = torch.randint(0, 256, (n, 1, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    fa = extractor(half_a)[0].numpy()
    floor = {
        "fid_real_half_vs_half": fid(fa, extractor(half_b)[0].numpy()),
        "fid_real_vs_dcgan": fid(fa, extractor(fake)[0].numpy()),
        "fid_real_vs_noise": fid(fa, extractor(noise)[0].numpy()),
    }
    ordered = floor["fid_real_half_vs_half"] < floor["fid_real_vs_dcgan"] < floor["fid_real_vs_noise"]
    # The goal's timing: N fakes against the full real set, features extracted for both (no cache).
    t0 = time.perf_counter()
    timed = evaluate_images(many, None, "digits", "fid", "digits", size, 1, use_cache=False, device="cpu")
    fid_seconds = time.perf_counter() - t0
    return {
        "benchmark": "fid-floor", "quick": quick, "features": "digits", "image_size": size,
        "samples_per_set": n, **{k: round(v, 4) for k, v in floor.items()}, "ordering_holds": ordered,
        "preset": "dcgan-digits", "gan_steps": cfg.steps, "gan_train_seconds": round(train_seconds, 1),
        f"fid_{timed_n}_samples": timed["metrics"]["fid"], "timed_samples": timed_n,
        "fid_seconds": round(fid_seconds, 2), "sampling_seconds": round(sample_seconds, 2),
        "goal_fid_seconds": 120, "goal_met": ordered and fid_seconds < 120,
        "classifier_train_seconds_first_use": round(classifier_seconds, 1),
        "note": "timings on a shared CPU; FID time = features of the fakes and the full real set + the distance",
    }


def _mean_ci(values: list[float]) -> tuple[float, float, float]:
    from scipy import stats

    arr = np.asarray(values, dtype=np.float64)
    mean = float(arr.mean())
    if len(arr) < 2:  # one seed: no interval (None in the JSON, not NaN)
        return mean, None, None  # type: ignore[return-value]
    half = float(stats.t.ppf(0.975, len(arr) - 1) * arr.std(ddof=1) / math.sqrt(len(arr)))
    return mean, mean - half, mean + half


@BENCHMARKS.register("augmentation", description="k real digits per class: classifier on real vs real + cGAN samples, gain with 95% CI")
def augmentation(quick: bool = False, device: str = "auto", log: Log | None = None) -> dict:
    from ..data import load_data
    from ..metrics.classifier import TrainRecipe, accuracy, train_classifier
    from ..tasks.inference import load

    log = log or _quiet
    k, size = 10, 16
    seeds = [0] if quick else [0, 1, 2, 3, 4]
    gan_steps = 60 if quick else 2000
    per_class = 20 if quick else 100
    clf_steps = 60 if quick else 500
    width = 8 if quick else 32
    bundle = load_data("digits", image_size=size, channels=1)
    x, y = bundle.x, bundle.y
    rows = []
    for seed in seeds:
        g = torch.Generator().manual_seed(1000 + seed)
        perm = torch.randperm(len(x), generator=g)
        train_idx = torch.cat([perm[y[perm] == c][:k] for c in range(10)])
        test_mask = torch.ones(len(x), dtype=torch.bool)
        test_mask[train_idx] = False
        with tempfile.TemporaryDirectory() as tmp:
            # The cGAN sees exactly the k labelled images per class the classifier gets.
            folder = Path(tmp) / "real"
            from ..visual import save_image

            for i in train_idx.tolist():
                (folder / str(int(y[i]))).mkdir(parents=True, exist_ok=True)
                save_image(x[i], folder / str(int(y[i])) / f"{i}.png")
            t0 = time.perf_counter()
            _train_run([f"data=folder:{folder}", f"image_size={size}", "channels=1", "conditional=true",
                        f"steps={gan_steps}", "batch_size=64", "ema_kimg=5", f"generator.width={width}",
                        f"discriminator.width={width}", f"seed={seed}", f"device={device}", "progress=false",
                        f"checkpoint_every={gan_steps}", f"sample_every={gan_steps}", f"log_every={max(1, gan_steps // 10)}"],
                       Path(tmp) / "gan")
            gan_seconds = time.perf_counter() - t0
            model = load(Path(tmp) / "gan", device=device)
            # The folder's classes are named 0..9, so the model's label c is digit c.
            labels = torch.arange(10).repeat_interleave(per_class)
            synth = model.sample(len(labels), labels=labels, seed=seed)
        recipe = TrainRecipe(steps=clf_steps, seed=seed)
        real_only = train_classifier(x[train_idx], y[train_idx], 10, recipe)
        # Real and synthetic images are drawn equally often (the real ones are 10x fewer), so the
        # few real images keep half of every batch.
        n_real, n_syn = len(train_idx), len(synth)
        mix_w = torch.cat([torch.full((n_real,), 0.5 / n_real), torch.full((n_syn,), 0.5 / n_syn)])
        mixed = train_classifier(torch.cat([x[train_idx], synth]), torch.cat([y[train_idx], labels]), 10, recipe,
                                 weights=mix_w)
        synth_only = train_classifier(synth, labels, 10, recipe)
        row = {"seed": seed,
               "acc_real_only": accuracy(real_only, x[test_mask], y[test_mask]),
               "acc_real_plus_synthetic": accuracy(mixed, x[test_mask], y[test_mask]),
               "acc_synthetic_only_cas": accuracy(synth_only, x[test_mask], y[test_mask]),
               "gan_seconds": round(gan_seconds, 1)}
        row["gain_points"] = 100 * (row["acc_real_plus_synthetic"] - row["acc_real_only"])
        log(f"seed {seed}: real-only {row['acc_real_only']:.4f}  real+synthetic {row['acc_real_plus_synthetic']:.4f}  "
            f"synthetic-only {row['acc_synthetic_only_cas']:.4f}")
        rows.append({key: round(v, 4) if isinstance(v, float) else v for key, v in row.items()})
    gain, lo, hi = _mean_ci([r["gain_points"] for r in rows])
    return {
        "benchmark": "augmentation", "quick": quick, "data": "digits", "k_per_class": k, "image_size": size,
        "test_images": int(len(x) - 10 * k), "seeds": seeds, "gan": f"conditional dcgan width {width}, {gan_steps} steps",
        "synthetic_per_class": per_class, "classifier_steps": clf_steps, "mixing": "real and synthetic drawn 1:1",
        "acc_real_only_mean": round(float(np.mean([r["acc_real_only"] for r in rows])), 4),
        "acc_real_plus_synthetic_mean": round(float(np.mean([r["acc_real_plus_synthetic"] for r in rows])), 4),
        "cas_mean": round(float(np.mean([r["acc_synthetic_only_cas"] for r in rows])), 4),
        "gain_points_mean": round(gain, 3), "gain_points_ci95": None if lo is None else [round(lo, 3), round(hi, 3)],
        "goal_gain_points": 2.0, "goal_met": bool(gain >= 2.0), "per_seed": rows,
    }
