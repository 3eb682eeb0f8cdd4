"""One seed of `gancv benchmark augmentation` at K real digits per class, with AugmentSetup overrides,
run by the benchmark's own functions (augmentation_sets, augmentation_scores).

    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/augmentation_seed.py K SEED [key=value ...]

key=value: AugmentSetup fields, values parsed as YAML (e.g. mixup=0.2 keep=least_confident
gan_extra='[mode_seeking=1, augment=color]'). The seed's sets (real digits, test digits, the unfiltered
synthetic set) are cached under $AUG_CACHE (default runs/augmentation-cache), keyed by the fields the
GAN and its samples depend on, so classifier-only levers reuse the GAN (gan_seconds is the original run's).
Prints one JSON line: gain, real-only, real+synthetic, CAS, filter agreement, GAN and total CPU seconds."""
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

from gancv.bench.evaluation import AUGMENT, augmentation_scores, augmentation_sets

k, seed = int(sys.argv[1]), int(sys.argv[2])
overrides = {}
for pair in sys.argv[3:]:
    key, value = pair.split("=", 1)
    overrides[key] = yaml.safe_load(value)
    if isinstance(overrides[key], list):
        overrides[key] = tuple(overrides[key])
setup = dataclasses.replace(AUGMENT, k=k, seeds=(seed,), **overrides)
cpu0 = time.process_time()
gan_fields = ("k", "image_size", "gan_steps", "gan_width", "gan_extra", "per_class", "oversample", "truncation")
tag = hashlib.sha1(json.dumps([getattr(setup, f) for f in gan_fields]).encode()).hexdigest()[:10]
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
row = augmentation_scores(setup, seed, sets)
print(json.dumps({"k": k, "overrides": overrides, "gain_points": row.pop("gain_points"), **row,
                  "gan_cpu_seconds": round(gan_cpu, 1), "cpu_seconds": round(time.process_time() - cpu0, 1), "cached_gan": cached}, default=list))
