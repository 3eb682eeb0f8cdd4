"""Train one seed of the stacked-digits preset into a kept run directory (as bench.modes._train does:
checkpoint and preview only at the end), so that sampling variants (scripts/stacked_digits_variants.py)
can be scored afterwards without retraining.

    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/stacked_digits_run.py SEED OUT [key=value ...]"""
import json
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf
from safetensors.torch import save_file

import gancv.training.loop as loop
from gancv.api import train
from gancv.config import make_config
from gancv.training.ema import EMA

# Extra EMA half-lives tracked beside the config's (EMA does not change training): their G weights
# are saved as OUT/ema/emaK.safetensors, for stacked_digits_variants.py's emaK variants.
EXTRA_KIMG = (2.0, 10.0, 20.0)
made: list = []


class MultiEMA(EMA):
    def __init__(self, model, batch_size, ema_kimg, rampup=None):
        super().__init__(model, batch_size, ema_kimg, rampup)
        self.extra = {k: EMA(model, batch_size, k, rampup) for k in EXTRA_KIMG}
        made.append(self)

    def update(self, model, images=0):
        super().update(model, images)
        for e in self.extra.values():
            e.update(model, images)


loop.EMA = MultiEMA  # the loop builds its EMA through this name

seed, out = int(sys.argv[1]), Path(sys.argv[2])
overrides = OmegaConf.to_container(OmegaConf.from_dotlist(sys.argv[3:]))  # dotted key=value -> nested dict
cfg = make_config("dcgan-stacked-digits", {**overrides, "seed": seed, "device": "cpu", "progress": False})
cfg.checkpoint_every = cfg.sample_every = cfg.steps
t0, c0 = time.perf_counter(), time.process_time()
train(cfg, out=out)
(out / "ema").mkdir(exist_ok=True)  # nothing in it when ema_kimg=0
for k, e in (made[0].extra.items() if made else ()):
    save_file({n: t.contiguous() for n, t in e.shadow.state_dict().items()}, str(out / "ema" / f"ema{k:g}.safetensors"))
seconds = {"train_seconds": round(time.perf_counter() - t0, 1), "train_cpu_seconds": round(time.process_time() - c0, 1)}
(out / "seconds.json").write_text(json.dumps({"seed": seed, "overrides": overrides, **seconds}))
print(json.dumps({"seed": seed, "overrides": overrides, **seconds}))
