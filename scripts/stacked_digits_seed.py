"""One seed of `gancv benchmark stacked-digits`'s "ours" entry, with overrides: half the cost of the
benchmark (no plain-DCGAN baseline), scored by the benchmark's own functions (25,600 samples drawn with
seed 10,000 + SEED, read per channel by classify_stacked, score_stacked, channel_balance).

    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/stacked_digits_seed.py SEED [key=value ...]

key=value: dotted config overrides, values parsed as YAML (e.g. discriminator.width=1024).
Prints one JSON line: modes, reverse KL, per-channel digit KL, unsure share, train wall/CPU seconds."""
import json
import sys

from omegaconf import OmegaConf

from gancv.bench.modes import STACKED_SAMPLES, _train_and_sample, channel_balance, classify_stacked
from gancv.metrics.modes import score_stacked

seed = int(sys.argv[1])
overrides = OmegaConf.to_container(OmegaConf.from_dotlist(sys.argv[2:]))  # dotted key=value -> nested dict
images, seconds, _ = _train_and_sample("dcgan-stacked-digits", overrides, STACKED_SAMPLES, seed, "cpu")
classes, conf = classify_stacked(images)
balance = channel_balance(classes, conf)
balance.pop("channel_digit_share")
print(json.dumps({"seed": seed, "overrides": overrides, **score_stacked(classes).as_dict(),
                  "mean_confidence": round(float(conf.mean()), 4), **balance, **seconds}))
