"""Score gan-toy2d-grid recipes exactly as `gancv benchmark mode-coverage` does (its own functions:
`gancv.bench.modes._train` and `_toy_scores`: 2,500 samples, DRS as the preset says, plain sampling
of the same model beside it), on the same seeds for every recipe; one JSON line per run and a
mean line per recipe.

    OMP_NUM_THREADS=1 python scripts/grid_sweep.py 'steps=18000' 'steps=18000 ema_kimg=10' --seeds 0 1 2

A recipe is space-separated dotted overrides (values parsed as YAML). Used for issue 3's grid levers.
"""
from __future__ import annotations

import argparse
import json
import statistics

import yaml

from gancv.bench.modes import _toy_scores, _train
from gancv.data import toy2d_modes


def parse(recipe: str) -> dict:
    out: dict = {}
    for item in recipe.split():
        key, value = item.split("=", 1)
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(value)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("recipes", nargs="+", help="space-separated key=value overrides; '' = the preset")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--percentiles", type=float, nargs="*", default=[],
                    help="also score each trained model with DRS at these percentiles (no retraining)")
    args = ap.parse_args()
    centres, std = toy2d_modes("grid")
    for recipe in args.recipes:
        rows = []
        for seed in args.seeds:
            model, seconds, _ = _train("gan-toy2d-grid", parse(recipe), seed, "cpu")
            s = _toy_scores(model, 2_500, seed, centres, std)
            plain = s.get("without_drs", s)
            row = {"recipe": recipe, "seed": seed, "covered": s["covered"], "hq": s["high_quality"],
                   "kl": s["reverse_kl"], "plain_covered": plain["covered"], "plain_hq": plain["high_quality"],
                   "plain_kl": plain["reverse_kl"], **seconds}
            for pct in args.percentiles:  # the same model, another DRS acceptance shift
                drs = model.info["drs"]
                old, drs["percentile"] = drs["percentile"], pct
                sp = _toy_scores(model, 2_500, seed, centres, std)
                drs["percentile"] = old
                row[f"p{pct:g}"] = {"covered": sp["covered"], "hq": sp["high_quality"], "kl": sp["reverse_kl"]}
            rows.append(row)
            print(json.dumps(row), flush=True)
        mean = {k: _mean(r[k] for r in rows)
                for k in ("covered", "hq", "kl", "plain_hq", "plain_kl", "train_seconds", "train_cpu_seconds")}
        for pct in args.percentiles:
            mean[f"p{pct:g}"] = {k: _mean(r[f"p{pct:g}"][k] for r in rows) for k in ("covered", "hq", "kl")}
        print(json.dumps({"recipe": recipe, "seeds": args.seeds, "mean": mean}), flush=True)


def _mean(values) -> float | str | None:
    """Mean over the runs that have the figure; a run whose KL is null (no high-quality sample at all)
    is counted, not averaged in, so one collapsed run cannot crash the sweep or hide in the mean."""
    values = list(values)
    known = [v for v in values if v is not None]
    if not known:
        return None
    mean = round(statistics.mean(known), 4)
    return mean if len(known) == len(values) else f"{mean} ({len(values) - len(known)} of {len(values)} null)"


if __name__ == "__main__":
    main()
