"""The augmentation benchmark's ceiling: what would a perfect generator add? Per seed, the k real
digits per class of `gancv benchmark augmentation` (same draw), plus M *other real* digits per class
standing in for the synthetic set (a generator whose samples are new real digits with right labels),
through the benchmark's own scoring (augmentation_scores: same classifier recipe, 50 % share, no
filter). Every M is tested on the same digits: those outside the k and the largest M.

    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/augmentation_oracle.py K SEED M [M ...]

Prints one JSON line per M: real only, real + M real "synthetic" per class, the M alone, the gain."""
import dataclasses
import json
import sys

import torch

from gancv.bench.evaluation import AUGMENT, _digit_subset, augmentation_scores
from gancv.data import load_data

k, seed, ms = int(sys.argv[1]), int(sys.argv[2]), [int(m) for m in sys.argv[3:]]
bundle = load_data("digits", image_size=AUGMENT.image_size, channels=1)
x, y = bundle.x, bundle.y
# The benchmark's draw, longer: per class its first k are the benchmark's real set, the next
# max(M) the stand-ins; every M is tested on the same remaining digits.
per_class = _digit_subset(x, y, k + max(ms), seed).view(10, k + max(ms))
train_idx = per_class[:, :k].flatten()
test = torch.ones(len(x), dtype=torch.bool)
test[per_class.flatten()] = False
for m in ms:
    extra = per_class[:, k : k + m].flatten()
    sets = {"real_x": x[train_idx], "real_y": y[train_idx], "test_x": x[test], "test_y": y[test],
            "synth_x": x[extra], "synth_y": y[extra], "gan_seconds": 0.0}
    setup = dataclasses.replace(AUGMENT, k=k, seeds=(seed,), filter=False, per_class=m, ceiling=False)
    row = augmentation_scores(setup, seed, sets)
    print(json.dumps({"k": k, "extra_real_per_class": m, "gain_points": row.pop("gain_points"), **row}), flush=True)
