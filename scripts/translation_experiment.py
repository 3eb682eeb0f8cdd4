"""One style / one method of ``gancv benchmark translation``, scored exactly as the benchmark does.

    OMP_NUM_THREADS=1 python scripts/translation_experiment.py cartoon cyclegan [seed=1 key=value ...]

Same held-out crops (seed 0, train=False), same base overrides (device=cpu, progress=false; the
preset's own steps) and the same _train_and_score, so one candidate costs one method's training
(~4 CPU min for CycleGAN) instead of the whole benchmark. Extra key=value overrides go after the
base ones (e.g. ``seed=1``, ``steps=2000``). The last line printed is one JSON object; for gray
it adds the RMS of the prediction's chroma (channel spread) and luma errors, in grey levels.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch

from gancv.bench.translation import FULL, _train_and_score
from gancv.data import load_data

METHODS = {"pix2pix": ("pix2pix-photos-{}", []), "pix2pix_l1_only": ("pix2pix-photos-{}", ["lambda_gan=0"]),
           "cyclegan": ("cyclegan-photos-{}", [])}


def main(style: str, method: str, extra: list[str]) -> dict:
    held = load_data(f"photo-pairs:{style}", image_size=32, max_items=FULL["test_items"], seed=0, train=False)
    test_a, test_b = held.x[:, :3], held.x[:, 3:]
    preset, method_extra = METHODS[method]
    base = ["device=cpu", "progress=false"] + ([f"steps={FULL['steps']}"] if FULL["steps"] else [])
    with tempfile.TemporaryDirectory() as tmp:
        row = _train_and_score(preset.format(style), base + method_extra + extra, Path(tmp) / "run", test_a, test_b, "cpu")
        if style == "gray":  # where the error sits: colour left in the output, or the grey level itself
            from gancv.api import load

            pred = load(Path(tmp) / "run").translate(test_a, direction="a2b", precision="fp32").float()
            truth = test_b.float()
            chroma = pred - pred.mean(1, keepdim=True)
            luma_err = pred.mean(1) - truth.mean(1)
            row["chroma_rms_levels"] = round(float(chroma.pow(2).mean().sqrt()), 2)
            row["luma_rms_levels"] = round(float(luma_err.pow(2).mean().sqrt()), 2)
            row["luma_bias_levels"] = round(float(luma_err.mean()), 2)
    return {"style": style, "method": method, "overrides": extra, **row}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], sys.argv[3:])), flush=True)
