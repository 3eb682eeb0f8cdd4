"""Evaluation during training (``eval_every=``): scores go to metrics.jsonl, the best model to RUN/best.

``RUN/best/`` is a model export (``gancv.load(RUN/best)`` works) of the weights that scored best
on the first metric in ``eval_metrics``; ``RUN/best/best.json`` says at which step and with what.
"""
from __future__ import annotations

import json
import time
from typing import Any

import torch

from ..errors import GancvError
from ..training.checkpoint import atomic_write_json
from .evaluate import LOWER_IS_BETTER, evaluate_images, parse_metrics


def check_eval_config(cfg: Any) -> None:
    if cfg.eval_every < 0:
        raise GancvError(f"eval_every must be >= 0 (0 = off), got {cfg.eval_every}")
    if cfg.eval_every:
        parse_metrics(cfg.eval_metrics)
        if cfg.eval_samples < 2:
            raise GancvError(f"eval_samples must be >= 2, got {cfg.eval_samples}")
        if cfg.task != "generation":
            raise GancvError(f"eval_every works for generation runs; task {cfg.task!r} has its own benchmarks")


@torch.no_grad()
def _samples(G: torch.nn.Module, n: int, z_dim: int, num_classes: int, seed: int, device: torch.device):
    # Fixed noise per run: successive evaluations differ only because the weights changed.
    g = torch.Generator().manual_seed(seed + 777)
    z = torch.randn(n, z_dim, generator=g)
    labels = torch.arange(n) % num_classes if num_classes else None
    was_training = G.training
    G.eval()
    try:
        outs = [G(z[i : i + 256].to(device), None if labels is None else labels[i : i + 256].to(device)).float().cpu()
                for i in range(0, n, 256)]
    finally:
        G.train(was_training)
    images = ((torch.cat(outs).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return images, labels


def periodic_eval(trainer: Any) -> dict[str, Any]:
    cfg, task = trainer.cfg, trainer.task
    if trainer.bundle.kind != "image":
        raise GancvError(f"eval_every scores images; {cfg.data} is not an image data set (set eval_every=0)")
    nets = trainer.export_networks()
    G = nets[task.ema_network]
    t0 = time.perf_counter()
    images, labels = _samples(G, cfg.eval_samples, cfg.z_dim, task.num_classes, cfg.seed, trainer.device)
    result = evaluate_images(images, labels, cfg.data, cfg.eval_metrics, cfg.eval_features,
                             image_size=trainer.bundle.shape[-1], channels=trainer.bundle.shape[0], seed=cfg.seed,
                             device=str(trainer.device), log=trainer.log)
    scores = result["metrics"]
    row = {"step": trainer.step, "eval": scores, "eval_seconds": round(time.perf_counter() - t0, 2)}
    first = parse_metrics(cfg.eval_metrics)[0]
    key = next(iter(scores))  # the first metric's headline number (fid, kid, is, precision, ...)
    lower = first in LOWER_IS_BETTER
    best_dir = trainer.out / "best"
    best_file = best_dir / "best.json"
    previous = None
    if best_file.is_file():
        try:
            previous = json.loads(best_file.read_text())
        except (OSError, json.JSONDecodeError):
            previous = None
    value = scores[key]
    if previous is None or previous.get("metric") != key or (value < previous["value"] if lower else value > previous["value"]):
        task.export(best_dir, nets)
        atomic_write_json(best_file, {"step": trainer.step, "metric": key, "value": value, "scores": scores,
                                      "features": cfg.eval_features, "samples": cfg.eval_samples})
        row["best"] = True
    return row
