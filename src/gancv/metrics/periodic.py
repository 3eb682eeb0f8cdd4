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
        from ..tasks import TASKS
        from ..tasks.inference import GenerativeModel

        if not issubclass(getattr(TASKS.get(cfg.task), "inference", object), GenerativeModel):
            raise GancvError(f"eval_every works for image generation runs; task {cfg.task!r} has its own benchmarks")


def _samples(task: Any, G: torch.nn.Module, n: int, seed: int, device: torch.device):
    """n samples through the task's own inference class (so StyleGAN's W-space sampling etc. apply),
    leaving the training network's mode and requires_grad flags as they were."""
    modes = [(m, m.training) for m in G.modules()]
    grads = [(p, p.requires_grad) for p in G.parameters()]
    try:
        model = task.inference(G, task.model_info(G), device)
        labels = torch.arange(n) % model.num_classes if model.conditional else None
        # Fixed seed per run: successive evaluations differ only because the weights changed.
        images = model.sample(n, labels=labels, seed=seed + 777)
    finally:
        for m, mode in modes:
            m.training = mode
        for p, flag in grads:
            p.requires_grad_(flag)
    return images, labels


def periodic_eval(trainer: Any) -> dict[str, Any]:
    cfg, task = trainer.cfg, trainer.task
    if trainer.bundle.kind != "image":
        raise GancvError(f"eval_every scores images; {cfg.data} is not an image data set (set eval_every=0)")
    nets = trainer.export_networks()
    G = nets[task.ema_network]
    t0 = time.perf_counter()
    images, labels = _samples(task, G, cfg.eval_samples, cfg.seed, trainer.device)
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
