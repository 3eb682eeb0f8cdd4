"""One seed of `gancv benchmark augmentation` at K real digits per class, with AugmentSetup overrides,
run by the benchmark's own functions (augmentation_sets, augmentation_scores).

    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/augmentation_seed.py K SEED [key=value ...] [-- key=value ...]

key=value: AugmentSetup fields, values parsed as YAML (e.g. mixup=0.2 keep=least_confident
gan_extra='["mode_seeking=1", "augment=translation"]'). Each `--` starts another variant of the same seed,
run in the same process: a classifier trained on exactly the same data and settings (the real-only one,
usually) is trained once and reused. The seed's sets (real digits, test digits, the unfiltered synthetic
set) are cached under $AUG_CACHE (default runs/augmentation-cache), keyed by the fields the GAN and its
samples depend on, so classifier-only levers reuse the GAN (gan_cpu_seconds is then the original run's).
Prints one JSON line per variant: gain, real-only, real+synthetic, CAS, filter agreement, CPU seconds."""
import dataclasses
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

import gancv.metrics.classifier as classifier
from gancv.bench.evaluation import AUGMENT, augmentation_scores, augmentation_sets, ceiling_sets
from gancv.data import load_data

_train, _trained = classifier.train_classifier, {}


def _digest(value) -> str:
    if isinstance(value, torch.Tensor):
        return hashlib.sha1(value.contiguous().numpy().tobytes()).hexdigest() + str(value.dtype)
    if isinstance(value, torch.nn.Module):  # init=...: its weights, not its repr
        return _digest(torch.cat([p.flatten() for p in value.state_dict().values()]))
    return repr(value)


def memo_train(*args, **kwargs):
    key = tuple(_digest(a) for a in args) + tuple((k, _digest(v)) for k, v in sorted(kwargs.items()))
    if key not in _trained:
        _trained[key] = _train(*args, **kwargs)
    return _trained[key]


classifier.train_classifier = memo_train


def parse(pairs: list[str]) -> dict:
    overrides = {}
    for pair in pairs:
        key, value = pair.split("=", 1)
        overrides[key] = yaml.safe_load(value)
        if isinstance(overrides[key], list):
            overrides[key] = tuple(overrides[key])
    return overrides


k, seed, variants = int(sys.argv[1]), int(sys.argv[2]), [[]]
for arg in sys.argv[3:]:
    if arg == "--":
        variants.append([])
    else:
        variants[-1].append(arg)
gan_fields = ("k", "image_size", "gan_steps", "gan_width", "gan_extra", "per_class", "oversample", "truncation")
new_gan_fields = ("gan_size",)  # in the key only when set, so caches from before them stay valid
for pairs in variants:
    overrides = parse(pairs)
    setup = dataclasses.replace(AUGMENT, k=k, seeds=(seed,), **overrides)
    cpu0 = time.process_time()
    key = [getattr(setup, f) for f in gan_fields] + [[f, getattr(setup, f)] for f in new_gan_fields if getattr(setup, f)]
    tag = hashlib.sha1(json.dumps(key).encode()).hexdigest()[:10]
    cache = Path(os.environ.get("AUG_CACHE", "runs/augmentation-cache")) / f"k{k}-seed{seed}-{tag}.pt"
    cached = cache.exists()
    if cached:
        sets = torch.load(cache, weights_only=True)
        gan_cpu = sets.pop("gan_cpu_seconds")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            sets = augmentation_sets(setup, seed, Path(tmp), device="cpu")
        gan_cpu = time.process_time() - cpu0
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save({**sets, "gan_cpu_seconds": gan_cpu}, cache)
    if setup.ceiling and "ceiling_x" not in sets:  # a cache from before the ceiling: its data is the digits'
        digits = load_data("digits", image_size=setup.image_size, channels=1)
        sets.update(ceiling_sets(setup, seed, digits.x, digits.y))
    row = augmentation_scores(setup, seed, sets)
    print(json.dumps({"k": k, "overrides": overrides, "gain_points": row.pop("gain_points"), **row,
                      "gan_cpu_seconds": round(gan_cpu, 1), "cpu_seconds": round(time.process_time() - cpu0, 1),
                      "cached_gan": cached}, default=list), flush=True)
