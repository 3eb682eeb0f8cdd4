"""Super-resolution PSNR-stage experiment: the benchmark's recipe (``sr_recipe()``) plus overrides,
scored exactly like ``gancv benchmark super-resolution`` (held-out crops, Pillow bicubic baseline,
one forward pass and the flip/rotation ensemble). Compare recipes on the same seeds.

usage: OMP_NUM_THREADS=1 python scripts/sr_experiment.py TAG SEED [key=value ...] [--log FILE.jsonl]
prints one JSON line (gain over bicubic in dB, training wall/CPU seconds, load average)."""
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from gancv.api import load
from gancv.bench.restoration import _low_res, _pil_upscale, _test_crops, _train, sr_recipe
from gancv.metrics.reference import score

args = sys.argv[1:]
log = args.pop(args.index("--log") + 1) if "--log" in args else None
args = [a for a in args if a != "--log"]
tag, seed, extra = args[0], int(args[1]), args[2:]
_, overrides = sr_recipe(False, "cpu")
hr = _test_crops(None)
lr = _low_res(hr, 4)
bicubic = score(_pil_upscale(lr, 4, Image.Resampling.BICUBIC), hr)
t0, c0 = time.perf_counter(), time.process_time()
with tempfile.TemporaryDirectory() as tmp:
    run = Path(tmp) / "run"
    _train("srresnet-x4", [*overrides, f"seed={seed}", *extra], run, None)  # PSNR stage only (steps = pretrain_steps)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    model = load(run, device="cpu")
    one = score(model.upscale(lr, precision="fp32"), hr)
    ens = score(model.upscale(lr, precision="fp32", ensemble=True), hr)
out = {"tag": tag, "seed": seed, "overrides": extra, "gain": round(one["psnr"] - bicubic["psnr"], 3),
       "gain_ensemble": round(ens["psnr"] - bicubic["psnr"], 3), "psnr": one["psnr"], "ssim": one["ssim"],
       "bicubic_psnr": bicubic["psnr"], "train_wall_s": round(wall, 1), "train_cpu_s": round(cpu, 1),
       "load1": round(os.getloadavg()[0], 2)}
print(json.dumps(out))
if log:
    with open(log, "a") as f:
        f.write(json.dumps(out) + "\n")
