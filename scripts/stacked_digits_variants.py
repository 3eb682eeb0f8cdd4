"""Score sampling variants of a kept stacked-digits run (scripts/stacked_digits_run.py) with the
benchmark's functions (25,600 samples, seed 10,000 + SEED), one JSON line each. Variants: plain (the
export: EMA G), raw (the raw G of the last checkpoint), emaK (the extra EMA half-lives the run kept),
each optionally followed by bnN (BatchNorm statistics re-estimated over N batches of 64), and drsP
(rejection sampling at percentile P, for runs trained with drs.enabled=true).

    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/stacked_digits_variants.py RUN VARIANT[,VARIANT...]"""
import copy
import json
import re
import sys
import time
from pathlib import Path

import torch

from gancv.api import load
from gancv.bench.modes import STACKED_SAMPLES, channel_balance, classify_stacked
from gancv.metrics.modes import score_stacked
from gancv.training.checkpoint import load_weights

run, variants = Path(sys.argv[1]), sys.argv[2].split(",")
meta = json.loads((run / "seconds.json").read_text())
seed = meta["seed"]
model = load(run, device="cpu")
ema_g = model.generator


@torch.no_grad()
def reestimate_bn(G, batches, batch_size=64):
    G = copy.deepcopy(G)
    for m in G.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over all batches
    G.train()
    g = torch.Generator().manual_seed(123)
    for _ in range(batches):
        G(torch.randn(batch_size, model.z_dim, generator=g), None)
    return G.eval()


def report(images, variant, **extra):
    classes, conf = classify_stacked(images)
    balance = channel_balance(classes, conf)
    balance.pop("channel_digit_share")
    print(json.dumps({"run": run.name, "variant": variant, **extra, **score_stacked(classes).as_dict(),
                      "mean_confidence": round(float(conf.mean()), 4), **balance,
                      **{k: meta[k] for k in ("seed", "overrides", "train_cpu_seconds")}}), flush=True)


raw_g = None
for v in variants:
    c0 = time.process_time()
    if v.startswith("drs"):
        model.generator = ema_g
        model.info["drs"]["percentile"] = float(v[3:])
        images, stats = model.rejection_sample(STACKED_SAMPLES, None, seed=10_000 + seed)
        report(images, v, **stats)
        continue
    base, rest = re.fullmatch(r"(raw|ema[\d.]+|plain)?(bn\d+)?", v).groups()
    if base == "raw":
        if raw_g is None:
            raw_g = copy.deepcopy(ema_g)
            ckpt = sorted((run / "checkpoints").glob("step-*"))[-1]
            load_weights(raw_g, ckpt / "generator.safetensors")
            raw_g.eval()
        G = raw_g
    elif base and base.startswith("ema"):
        G = copy.deepcopy(ema_g)
        load_weights(G, run / "ema" / f"{base}.safetensors")
        G.eval()
    else:
        G = ema_g
    rest = rest or ""
    if rest.startswith("bn"):
        G = reestimate_bn(G, int(rest[2:]))
    model.generator = G
    images = model.sample(STACKED_SAMPLES, seed=10_000 + seed, drs=False)
    report(images, v, variant_cpu_seconds=round(time.process_time() - c0, 1))
