"""The training monitor's view of a live run directory: curves, latest samples, speed, metrics.

Read fresh on every refresh and tolerant of everything a live run does to its files: a
half-written last line, samples.png replaced mid-read, the whole directory deleted.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..visual import read_metrics

SKIP = {"step", "time"}


@dataclass
class RunStatus:
    exists: bool
    summary: str  # markdown
    curves: list[dict[str, Any]]  # long format rows: step, value, series
    samples: str | None  # path of the latest sample grid


def run_status(run_dir: Path, now: float | None = None) -> RunStatus:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return RunStatus(False, f"**{run_dir}** no longer exists (deleted or moved); the other tabs keep working.", [], None)
    rows = read_metrics(run_dir / "metrics.jsonl")
    curves = [{"step": r["step"], "value": float(v), "series": k}
              for r in rows if isinstance(r.get("step"), int)
              for k, v in r.items() if k not in SKIP and k.endswith("_loss") and isinstance(v, (int, float))]
    samples = run_dir / "samples.png"
    lines = [f"**Run** `{run_dir}`"]
    if not rows:
        lines.append("No metrics logged yet (metrics.jsonl is empty); waiting for the first log step.")
    else:
        last = rows[-1]
        age = (now or time.time()) - float(last.get("time", 0) or 0)
        state = "finished or paused" if age > 120 else "training"
        lines.append(f"step **{last.get('step')}** · {last.get('img_per_s', '?')} img/s · last log {age:.0f} s ago ({state})")
        extra = {k: v for k, v in last.items() if k not in SKIP and not k.endswith("_loss") and not k.startswith("lr_")
                 and k != "img_per_s" and isinstance(v, (int, float))}
        evals = {k: v for r in rows for k, v in r.items()
                 if k.startswith(("eval_", "fid", "kid", "is_", "coverage", "psnr", "ssim", "lpips"))}
        if extra:
            lines.append("last: " + ", ".join(f"{k}={v:.4g}" for k, v in extra.items()))
        if evals:
            lines.append("evaluation: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in evals.items()))
    return RunStatus(True, "  \n".join(lines), curves, str(samples) if samples.is_file() else None)
