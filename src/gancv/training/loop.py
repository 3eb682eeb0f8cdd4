"""The training loop: phases as data, the loop owns optimisers, EMA, logging and checkpoints.

A task (``gancv.tasks``) says which networks exist, which optimiser updates which, and which
phases run (D step, G step, lazy regularisers, each with its own cadence). The loop below is
the same for every task; the training step is the inner ``for phase`` block.
"""
from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from omegaconf import DictConfig
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..config import save_config, to_dict
from ..data import load_data
from ..device import resolve_device
from ..errors import GancvError
from .checkpoint import atomic_write_bytes, checkpoint_dirs, load_state, load_weights, save_checkpoint
from .ema import EMA
from .guard import DivergenceGuard
from .stream import Batch, BatchStream

Losses = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Phase:
    """One kind of optimiser update. ``every``: run on steps divisible by it (lazy regularisation);
    ``repeats``: consecutive updates per run, each on a fresh batch (n_critic)."""

    name: str
    optimizer: str
    fn: Callable[[Batch], Losses]  # returns {"loss": what to backprop, other detached scalars to log}
    every: int = 1
    repeats: int = 1


@dataclass(frozen=True)
class OptimizerSpec:
    networks: tuple[str, ...]
    lr: float
    betas: tuple[float, float]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state(task_rng: torch.Generator) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "task": task_rng.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any], task_rng: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    task_rng.set_state(state["task"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Trainer:
    def __init__(self, cfg: DictConfig, out: Path, resume: bool = False, log: Callable[[str], None] | None = None):
        from ..tasks import TASKS

        self.cfg, self.out, self.log = cfg, Path(out), log or (lambda msg: None)
        self.device = resolve_device(cfg.device)
        seed_everything(cfg.seed)
        self.bundle = load_data(cfg.data, image_size=cfg.image_size, channels=cfg.channels,
                                data_root=cfg.data_root, max_items=cfg.max_items, seed=cfg.seed)
        self.rng = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self.task = TASKS.get(cfg.task)(cfg, self.bundle, self.device, self.rng)
        self.networks: dict[str, torch.nn.Module] = {k: v.to(self.device) for k, v in self.task.networks.items()}
        self.optimizers = {
            name: torch.optim.Adam(
                [p for net in spec.networks for p in self.networks[net].parameters()], lr=spec.lr, betas=spec.betas
            )
            for name, spec in self.task.optimizers.items()
        }
        self.ema = (
            EMA(self.networks[self.task.ema_network], cfg.batch_size, cfg.ema_kimg)
            if cfg.ema_kimg > 0 and self.task.ema_network
            else None
        )
        self.stream = BatchStream(self.bundle, cfg.batch_size, self.device, cfg.seed, cfg.num_workers)
        self.step = 0
        self.guard = DivergenceGuard(self.device, cfg.guard_grad_norm) if cfg.guard else None
        self.rollbacks = 0  # divergence-guard rollbacks so far; learning rates are scaled by factor**rollbacks
        if resume:
            self._resume()
        else:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "metrics.jsonl").write_text("")
        save_config(cfg, self.out / "config.yaml")

    # ---- checkpoints -------------------------------------------------------------------------
    def checkpoint_networks(self) -> dict[str, torch.nn.Module]:
        nets = dict(self.networks)
        if self.ema is not None:
            nets[f"{self.task.ema_network}_ema"] = self.ema.shadow
        return nets

    def save(self) -> Path:
        state = {
            "step": self.step,
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "rng": _rng_state(self.rng),
            "stream": self.stream.state(),
            # Task-side training state (augmentation probability, image pools, extra streams...).
            "task": self.task.state_dict() if hasattr(self.task, "state_dict") else {},
            "guard": {"rollbacks": self.rollbacks},
        }
        path = save_checkpoint(self.out, self.step, self.checkpoint_networks(), state, self.cfg.keep_checkpoints)
        self.task.export(self.out / "model", self.export_networks())
        return path

    def export_networks(self) -> dict[str, torch.nn.Module]:
        nets = dict(self.networks)
        if self.ema is not None:  # sampling and export use the EMA weights when there are any
            nets[self.task.ema_network] = self.ema.shadow
        return nets

    def _resume(self) -> None:
        found = checkpoint_dirs(self.out)
        if not found:
            raise GancvError(f"{self.out} has no complete checkpoint to resume from; start it again without --resume")
        ckpt = found[-1]
        state = self._load_checkpoint(ckpt)
        self.rollbacks = int(state.get("guard", {}).get("rollbacks", 0))
        self.log(f"resumed from {ckpt} at step {self.step}")

    def _load_checkpoint(self, ckpt: Path) -> dict[str, Any]:
        state = load_state(ckpt / "state.pt")
        for name, module in self.checkpoint_networks().items():
            load_weights(module, ckpt / f"{name}.safetensors", self.device)
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        _set_rng_state(state["rng"], self.rng)
        self.stream.load_state(state["stream"])
        if hasattr(self.task, "load_state_dict"):
            self.task.load_state_dict(state.get("task", {}))
        self.step = int(state["step"])
        # Drop log lines written after the checkpoint (a kill between checkpoints), so the
        # resumed log reads as one uninterrupted run.
        metrics = self.out / "metrics.jsonl"
        if metrics.is_file():
            keep = [ln for ln in metrics.read_text().splitlines() if _line_step(ln) <= self.step]
            metrics.write_text("".join(ln + "\n" for ln in keep))
        return state

    def _rollback(self, reason: str) -> None:
        """Divergence: back to the last good checkpoint with lower learning rates, or give up after K tries."""
        cfg, bad_step = self.cfg, self.step
        ckpt = checkpoint_dirs(self.out)[-1]
        if self.rollbacks >= cfg.guard_max_rollbacks:
            raise GancvError(
                f"training diverged ({reason}) by step {bad_step} after {self.rollbacks} rollback(s) with learning "
                f"rates down to x{cfg.guard_lr_factor ** self.rollbacks:g}; the last good checkpoint is {ckpt}. "
                "Lower lr_g/lr_d, add r1_gamma or discriminator.spectral_norm=true, or raise guard_max_rollbacks")
        self.rollbacks += 1
        self._load_checkpoint(ckpt)
        scale = cfg.guard_lr_factor ** self.rollbacks
        for name, opt in self.optimizers.items():
            for group in opt.param_groups:
                group["lr"] = self.task.optimizers[name].lr * scale
        self.guard.reset()  # type: ignore[union-attr]
        event = {"step": self.step, "event": "rollback", "reason": reason, "bad_step": bad_step,
                 "rollback": self.rollbacks, "lr_scale": scale, "time": round(time.time(), 3)}
        self._append_metrics(event)
        self.log(f"divergence guard: {reason} by step {bad_step}; rolled back to step {self.step}, "
                 f"learning rates x{scale:g} (rollback {self.rollbacks} of at most {cfg.guard_max_rollbacks})")

    def _diverged(self) -> str | None:
        if self.guard is None:
            return None
        reason = self.guard.check()
        if reason is None:
            self.guard.reset()
        return reason

    # ---- the loop ----------------------------------------------------------------------------
    def train_step(self) -> Losses:
        logged: Losses = {}
        for phase in self.task.phases():
            if self.step % phase.every:
                continue
            opt = self.optimizers[phase.optimizer]
            trained = set(self.task.optimizers[phase.optimizer].networks)
            for name, net in self.networks.items():  # no gradients for networks this phase doesn't update
                net.requires_grad_(name in trained)
            for _ in range(phase.repeats):
                losses = phase.fn(self.stream.next())
                opt.zero_grad(set_to_none=True)
                losses["loss"].backward()
                if self.guard is not None:
                    self.guard.observe(losses["loss"], (p for g in opt.param_groups for p in g["params"]))
                opt.step()
            logged.update({k: v for k, v in losses.items() if k != "loss"})
        if self.ema is not None:
            self.ema.update(self.networks[self.task.ema_network])
        self.step += 1
        return logged

    def run(self) -> Path:
        cfg = self.cfg
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, int] = {}  # per key: lazy phases (R1 every N steps) log fewer values than steps
        t0, images0 = time.perf_counter(), 0
        for net in self.networks.values():
            net.train()
        progress = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(), disable=not cfg.progress, transient=False,
        )
        if self.guard is not None and not checkpoint_dirs(self.out):
            self.save()  # the initial state is the rollback target until the first real checkpoint
        with progress:
            bar = progress.add_task("train", total=cfg.steps, completed=self.step, info="")
            while self.step < cfg.steps:
                losses = self.train_step()
                at_log = self.step % cfg.log_every == 0 or self.step == cfg.steps
                at_save = self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps
                at_sample = self.step % cfg.sample_every == 0
                if (at_log or at_save or at_sample) and (reason := self._diverged()):
                    self._rollback(reason)  # never log, preview or checkpoint a poisoned state
                    sums, counts, t0, images0 = {}, {}, time.perf_counter(), 0
                    progress.update(bar, completed=self.step)
                    continue
                for k, v in losses.items():  # summed on the device: no host sync until the log step
                    sums[k] = sums[k] + v if k in sums else v.clone()
                    counts[k] = counts.get(k, 0) + 1
                images0 += cfg.batch_size
                if at_log:
                    elapsed = time.perf_counter() - t0
                    row = {"step": self.step, **{k: round(float(v) / counts[k], 6) for k, v in sums.items()},
                           "img_per_s": round(images0 / max(elapsed, 1e-9), 1), "time": round(time.time(), 3),
                           **{f"lr_{k}": o.param_groups[0]["lr"] for k, o in self.optimizers.items()}}
                    self._append_metrics(row)
                    info = "  ".join(f"{k}={row[k]:.3f}" for k in sums) + f"  {row['img_per_s']:.0f} img/s"
                    progress.update(bar, completed=self.step, info=info)
                    sums, counts, t0, images0 = {}, {}, time.perf_counter(), 0
                if at_sample and self.step < cfg.steps:
                    self.preview()
                if at_save:
                    self.save()
            progress.update(bar, completed=self.step)
        self.preview()
        from ..visual import plot_losses

        plot_losses(self.out / "metrics.jsonl", self.out / "losses.png")
        return self.out

    def preview(self) -> None:
        nets = self.export_networks()
        path = self.out / "samples" / f"step-{self.step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.task.preview(nets, path)
        atomic_write_bytes(self.out / "samples.png", path.read_bytes())

    def _append_metrics(self, row: dict[str, Any]) -> None:
        with open(self.out / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps(row) + "\n")


def _line_step(line: str) -> int:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return 1 << 62


def train(cfg: DictConfig, out: Path, resume: bool = False, log: Callable[[str], None] | None = None) -> Path:
    return Trainer(cfg, out, resume=resume, log=log).run()


__all__ = ["Phase", "OptimizerSpec", "Trainer", "train", "to_dict"]
