"""Benchmarks of the core generators."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Callable

from . import BENCHMARKS


@BENCHMARKS.register("demo-digits", description="train dcgan-digits, score 1,000 samples with a real-digit classifier")
def demo_digits(quick: bool = False, device: str = "auto", log: Callable[[str], None] | None = None) -> dict:
    from ..api import load, train
    from ..config import make_config
    from ..metrics.digits import score_digits

    steps = 300 if quick else None
    overrides = [f"device={device}", "progress=false"] + ([f"steps={steps}"] if steps else [])
    cfg = make_config("dcgan-digits", overrides)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        train(cfg, out=Path(tmp) / "run")
        seconds = time.perf_counter() - t0
        model = load(Path(tmp) / "run", device=device)
        samples = model.sample(1000, seed=0)
    score = score_digits(samples).as_dict()
    return {"benchmark": "demo-digits", "preset": "dcgan-digits", "steps": cfg.steps, "batch_size": cfg.batch_size,
            "quick": quick, "device": str(model.device), "train_seconds": round(seconds, 1), **score}
