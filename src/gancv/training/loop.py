"""The training loop: phases as data, the loop owns optimisers, EMA, logging and checkpoints.

A task (``gancv.tasks``) says which networks exist, which optimiser updates which, and which
phases run (D step, G step, lazy regularisers, each with its own cadence). The loop below is
the same for every task; the training step is the inner ``for phase`` block.
"""
from __future__ import annotations

import copy
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
from . import distributed
from .checkpoint import atomic_write_bytes, checkpoint_dirs, load_state, load_weights, save_checkpoint
from .ema import EMA
from .guard import DivergenceGuard
from .precision import CudaGraphStep, make_adam, matmul_precision, prepare_networks, resolve_plan
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

    def lazy(self, every: int) -> "OptimizerSpec":
        """For networks that also take a lazy regularisation step every ``every`` steps (StyleGAN2,
        appendix B): ``every + 1`` updates per ``every`` steps, so lr and betas are scaled by
        c = every / (every + 1) to keep the effective step the same."""
        if every <= 1:
            return self
        c = every / (every + 1)
        return OptimizerSpec(self.networks, self.lr * c, (self.betas[0] ** c, self.betas[1] ** c))


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

        self.cfg, self.out = cfg, Path(out)
        if cfg.drs.enabled and cfg.task != "generation":
            raise GancvError(f"drs.enabled=true (discriminator rejection sampling) is built for task=generation, "
                             f"not task={cfg.task}; set drs.enabled=false")
        # A batch that does not split over the processes fails before any process group is joined.
        distributed.micro_batch(cfg.batch_size, distributed.env_dist().world, cfg.grad_accum)
        self.dist, self.device = distributed.setup(resolve_device(cfg.device))
        self.log = (log or (lambda msg: None)) if self.dist.main else (lambda msg: None)
        seed_everything(cfg.seed)
        self.bundle = load_data(cfg.data, image_size=cfg.image_size, channels=cfg.channels,
                                data_root=cfg.data_root, max_items=cfg.max_items, seed=cfg.seed)
        # Same seed on every rank: tasks draw the noise of the whole global batch and keep their
        # shard (``task.shard``), so N processes train what one process would.
        self.rng = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self.task = TASKS.get(cfg.task)(cfg, self.bundle, self.device, self.rng)
        self.task.shard = (self.dist.rank, self.dist.world)
        self.networks: dict[str, torch.nn.Module] = {k: v.to(self.device) for k, v in self.task.networks.items()}
        if self.dist.enabled:
            for net in self.networks.values():
                if cfg.sync_bn:
                    distributed.convert_sync_bn(net, self.device)
                distributed.broadcast_module(net)
        self.stream = BatchStream(self.bundle, cfg.batch_size, self.device, cfg.seed, cfg.num_workers,
                                  rank=self.dist.rank, world=self.dist.world, accum=cfg.grad_accum)
        graph_ok = (not self.dist.enabled and cfg.grad_accum == 1 and self.stream.resident
                    and all(p.every == 1 for p in self.task.phases())
                    and getattr(self.task, "graph_capturable", True)
                    # a graph replays the LR and EMA decay it captured: schedules need eager steps
                    and cfg.lr_decay_start is None and not cfg.ema_rampup)
        self.plan = resolve_plan(cfg, self.device, self.networks, graph_ok=graph_ok)
        self.optimizers = {
            name: make_adam([p for net in spec.networks for p in self.networks[net].parameters()],
                            spec.lr, spec.betas, self.plan)
            for name, spec in self.task.optimizers.items()
        }
        # A task names one network to average, or several (CycleGAN's two generators).
        ema_names = self.task.ema_network
        ema_names = (ema_names,) if isinstance(ema_names, str) else tuple(ema_names or ())
        self.emas = {name: EMA(self.networks[name], cfg.batch_size, cfg.ema_kimg, cfg.ema_rampup)
                     for name in (ema_names if cfg.ema_kimg > 0 else ())}
        if self.plan.channels_last:
            for ema in self.emas.values():
                ema.shadow.to(memory_format=torch.channels_last)  # same layout: one fused EMA update
        # After the EMA copy: the shadow is only sampled from, so it stays plain eager.
        self.compiled = prepare_networks(self.networks, self.plan, checkpointed=ema_names or ("generator",))
        self._verify_first_step = bool(self.compiled)
        self._graph = (CudaGraphStep(self._guarded_step, self.optimizers.values(),
                                     generators=[self.rng] if self.device.type == "cuda" else [])
                       if self.plan.cuda_graph else None)
        self.log(self.plan.describe() + (f"; {self.dist.world} processes" if self.dist.enabled else ""))
        self.step = 0
        self.guard = (DivergenceGuard(self.device, cfg.guard_grad_norm,
                                      [p for net in self.networks.values() for p in net.parameters()])
                      if cfg.guard else None)
        self.rollbacks = 0  # divergence-guard rollbacks so far; learning rates are scaled by factor**rollbacks
        # Per-step settings as plain values (an OmegaConf read costs ~20 us; a toy2d MLP step ~6 ms).
        self.accum, self.batch_size, self.guard_lr_factor = cfg.grad_accum, cfg.batch_size, cfg.guard_lr_factor
        # Each network's parameters and each optimiser's networks, listed once: the per-phase
        # requires_grad toggle walked the module trees 4 times a step (~5 % of a toy2d MLP step).
        # The first parameter stands for the flag (every toggle sets the whole network).
        self._params = {k: list(net.parameters()) for k, net in self.networks.items()}
        self._trains = {k: frozenset(spec.networks) for k, spec in self.task.optimizers.items()}
        if resume:
            self._resume()
        elif self.dist.main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "metrics.jsonl").write_text("")
        if self.dist.main:
            save_config(cfg, self.out / "config.yaml")
        self.model_id = self._model_id(resume)
        # Only rank 0 writes files (metrics, previews), so only it logs to TensorBoard.
        self.tb = make_logger(cfg.logger, self.out) if self.dist.main else None

    def _model_id(self, resume: bool) -> str:
        """The 32-bit id watermarked into this run's images; kept across resumes via the export."""
        from ..provenance import model_id_for, model_id_of_dir

        if resume and (self.out / "model" / "config.json").is_file():
            return model_id_of_dir(self.out / "model")
        return model_id_for(str(self.out.resolve()), str(time.time_ns()))

    # ---- checkpoints -------------------------------------------------------------------------
    def checkpoint_networks(self) -> dict[str, torch.nn.Module]:
        nets = dict(self.networks)
        for name, ema in self.emas.items():
            nets[f"{name}_ema"] = ema.shadow
        return nets

    def save(self) -> Path:
        state = {
            "step": self.step,
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "rng": _rng_state(self.rng),
            "stream": self.stream.state(),
            "world_size": self.dist.world,
            # Task-side training state (augmentation probability, image pools, extra streams...).
            "task": self.task.state_dict() if hasattr(self.task, "state_dict") else {},
            "guard": {"rollbacks": self.rollbacks},
        }
        path = save_checkpoint(self.out, self.step, self.checkpoint_networks(), state, self.cfg.keep_checkpoints)
        self.task.export(self.out / "model", self.export_networks())
        from ..model_card import finish_export

        finish_export(self.out / "model", self.cfg, self.out, self.model_id)
        return path

    def export_networks(self) -> dict[str, torch.nn.Module]:
        nets = dict(self.networks)
        for name, ema in self.emas.items():  # sampling and export use the EMA weights when there are any
            nets[name] = ema.shadow
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
        saved_world = int(state.get("world_size", 1))
        if saved_world != self.dist.world:
            self.log(f"checkpoint was written by {saved_world} process(es), resuming on {self.dist.world}: the data "
                     f"stream is re-sharded from the same global position (global batch {self.cfg.batch_size})")
        if hasattr(self.task, "load_state_dict"):
            self.task.load_state_dict(state.get("task", {}))
        self.step = int(state["step"])
        # Drop log lines written after the checkpoint (a kill between checkpoints), so the
        # resumed log reads as one uninterrupted run.
        metrics = self.out / "metrics.jsonl"
        if metrics.is_file() and self.dist.main:
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
        if self._graph is not None:  # the graph baked in the old optimiser state and learning rates
            self._graph = CudaGraphStep(self._guarded_step, self.optimizers.values(), self._graph.generators)
        event = {"step": self.step, "event": "rollback", "reason": reason, "bad_step": bad_step,
                 "rollback": self.rollbacks, "lr_scale": scale, "time": round(time.time(), 3)}
        if self.dist.main:
            self._append_metrics(event)
        self.log(f"divergence guard: {reason} by step {bad_step}; rolled back to step {self.step}, "
                 f"learning rates x{scale:g} (rollback {self.rollbacks} of at most {cfg.guard_max_rollbacks})")

    def _diverged(self) -> str | None:
        if self.guard is None:
            return None
        reason = self.guard.check()
        if self.dist.enabled:  # every process must roll back together, or the next all-reduce hangs
            reason = distributed.agree(reason)
        if reason is None:
            self.guard.reset()
        return reason

    # ---- the loop ----------------------------------------------------------------------------
    def apply_lr_schedule(self) -> None:
        # A task may scale every optimiser's base LR per step (CycleGAN's linear decay); tasks
        # without ``lr_factor`` keep constant LRs and are untouched. The divergence guard's
        # reduction after rollbacks composes with the schedule instead of being overwritten.
        if not hasattr(self.task, "lr_factor"):
            return
        factor = float(self.task.lr_factor(self.step)) * self.guard_lr_factor ** self.rollbacks
        for name, opt in self.optimizers.items():
            for group in opt.param_groups:
                group["lr"] = self.task.optimizers[name].lr * factor

    def train_step(self) -> Losses:
        # Tasks whose phases change over training (restoration's PSNR -> GAN stages) read the step here.
        self.task.step = self.step
        self.apply_lr_schedule()
        phases = [p for p in self.task.phases() if self.step % p.every == 0]
        # All of the step's (micro-)batches up front: the step body then touches no host data,
        # which is what lets it be replayed as one CUDA graph.
        batches = [self.stream.next() for p in phases for _ in range(p.repeats * self.accum)]
        with matmul_precision(self.plan.matmul_precision):
            logged = self._graph(batches) if self._graph is not None else self._guarded_step(batches)
        self.step += 1
        return logged

    def _step(self, batches: list[Batch]) -> Losses:
        logged: Losses = {}
        todo = iter(batches)
        accum = self.accum
        for phase in self.task.phases():
            if self.step % phase.every:
                continue
            opt, trained = self.optimizers[phase.optimizer], self._trains[phase.optimizer]
            for name, params in self._params.items():  # no gradients for networks this phase doesn't update
                if params and params[0].requires_grad != (name in trained):
                    for p in params:
                        p.requires_grad_(name in trained)
            for _ in range(phase.repeats):
                opt.zero_grad(set_to_none=True)
                for _ in range(accum):
                    losses = phase.fn(next(todo))
                    (losses["loss"] / accum if accum > 1 else losses["loss"]).backward()
                if self.dist.enabled:
                    distributed.average_gradients([p for g in opt.param_groups for p in g["params"]], self.dist.world)
                if self.guard is not None:
                    self.guard.observe(losses["loss"], (p for g in opt.param_groups for p in g["params"]))
                opt.step()
            logged.update({k: v for k, v in losses.items() if k != "loss"})
        for name, ema in self.emas.items():
            ema.update(self.networks[name], (self.step + 1) * self.batch_size)
        return logged

    def _guarded_step(self, batches: list[Batch]) -> Losses:
        """The step; the first one with compiled networks can fall back to eager.

        Compilation of the backward happens inside ``backward()``, after the forward already
        succeeded, so a failure there is caught here: the step's state is restored and the
        step is redone eagerly on the same batches, with one warning.
        """
        if not self._verify_first_step:
            return self._step(batches)
        self._verify_first_step = False
        saved = self._snapshot()
        try:
            return self._step(batches)
        except GancvError:
            raise
        except Exception as exc:  # inductor/dynamo raise many types; every one means "use eager"
            self._restore(saved)
            for compiled in self.compiled:
                compiled.disable(exc)
            return self._step(batches)

    def _snapshot(self) -> dict[str, Any]:
        return {
            "nets": {k: copy.deepcopy(m.state_dict()) for k, m in self.checkpoint_networks().items()},
            "opts": {k: copy.deepcopy(o.state_dict()) for k, o in self.optimizers.items()},
            "rng": _rng_state(self.rng),
        }

    def _restore(self, saved: dict[str, Any]) -> None:
        for k, m in self.checkpoint_networks().items():
            m.load_state_dict(saved["nets"][k])
        for k, o in self.optimizers.items():
            o.load_state_dict(saved["opts"][k])
            o.zero_grad(set_to_none=True)
        _set_rng_state(saved["rng"], self.rng)

    def run(self) -> Path:
        cfg = self.cfg
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, int] = {}  # per key: lazy phases (R1 every N steps) log fewer values than steps
        t0, images0 = time.perf_counter(), 0
        for net in self.networks.values():
            net.train()
        progress = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(), disable=not (cfg.progress and self.dist.main), transient=False,
        )
        if self.guard is not None and not checkpoint_dirs(self.out):
            if self.dist.main:
                self.save()  # the initial state is the rollback target until the first real checkpoint
            distributed.barrier()  # ... and every process may need to read it
        with progress:
            bar = progress.add_task("train", total=cfg.steps, completed=self.step, info="")
            steps, log_every, save_every, sample_every = cfg.steps, cfg.log_every, cfg.checkpoint_every, cfg.sample_every
            eval_every = cfg.eval_every
            while self.step < steps:
                losses = self.train_step()
                at_log = self.step % log_every == 0 or self.step == steps
                at_save = self.step % save_every == 0 or self.step == steps
                at_sample = self.step % sample_every == 0
                if (at_log or at_save or at_sample) and (reason := self._diverged()):
                    self._rollback(reason)  # never log, preview or checkpoint a poisoned state
                    sums, counts, t0, images0 = {}, {}, time.perf_counter(), 0
                    progress.update(bar, completed=self.step)
                    continue
                for k, v in losses.items():  # summed on the device: no host sync until the log step
                    sums[k] = sums[k] + v if k in sums else v.clone()
                    counts[k] = counts.get(k, 0) + 1
                images0 += self.batch_size
                if at_log:
                    sums = distributed.average_scalars(sums, self.dist.world)
                    elapsed = time.perf_counter() - t0
                    row = {"step": self.step, **{k: round(float(v) / counts[k], 6) for k, v in sums.items()},
                           "img_per_s": round(images0 / max(elapsed, 1e-9), 1), "time": round(time.time(), 3),
                           **{f"lr_{k}": o.param_groups[0]["lr"] for k, o in self.optimizers.items()}}
                    if self.dist.main:
                        self._append_metrics(row)
                    info = "  ".join(f"{k}={row[k]:.3f}" for k in sums) + f"  {row['img_per_s']:.0f} img/s"
                    progress.update(bar, completed=self.step, info=info)
                    sums, counts, t0, images0 = {}, {}, time.perf_counter(), 0
                if not self.dist.main:  # rank 0 alone writes samples, checkpoints and the export
                    continue
                if at_sample and self.step < steps:
                    self.preview()
                if at_save:
                    self.save()
                if eval_every and (self.step % eval_every == 0 or self.step == steps):
                    self.evaluate()
            progress.update(bar, completed=self.step)
        if self.dist.main:
            self.preview()
            if self.tb is not None:
                self.tb.close()
            from ..visual import plot_losses

            plot_losses(self.out / "metrics.jsonl", self.out / "losses.png")
        distributed.barrier()  # no rank leaves (and tears down the group) before rank 0 has written
        return self.out

    def evaluate(self) -> None:
        """Score the (EMA) generator now; keeps RUN/best when the score improved (``eval_every``)."""
        from ..metrics.periodic import periodic_eval

        self._append_metrics(periodic_eval(self))

    def preview(self) -> None:
        nets = self.export_networks()
        path = self.out / "samples" / f"step-{self.step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        from ..provenance import using

        with using(model_id=self.model_id, seed=self.cfg.seed, watermark=self.cfg.watermark):
            self.task.preview(nets, path)
        atomic_write_bytes(self.out / "samples.png", path.read_bytes())
        if self.tb is not None:
            self.tb.image(path, self.step)

    def _append_metrics(self, row: dict[str, Any]) -> None:
        with open(self.out / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps(row) + "\n")
        if self.tb is not None:
            self.tb.scalars(row)


class TensorBoardLogger:
    """``logger=tensorboard``: the metrics.jsonl scalars and each preview grid, in RUN/tensorboard/."""

    def __init__(self, out: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise GancvError("logger=tensorboard needs the tensorboard package: pip install 'gancv[tensorboard]' "
                             "(or pip install tensorboard), or set logger=none") from None
        self.writer = SummaryWriter(log_dir=str(out / "tensorboard"))

    def scalars(self, row: dict[str, Any]) -> None:
        step = int(row["step"])
        for key, value in row.items():
            if key not in ("step", "time") and isinstance(value, (int, float)):
                self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def image(self, path: Path, step: int) -> None:
        from PIL import Image

        with Image.open(path) as img:
            array = np.asarray(img.convert("RGB"))
        self.writer.add_image("samples", array, step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def make_logger(name: str, out: Path) -> TensorBoardLogger | None:
    return TensorBoardLogger(out) if name == "tensorboard" else None


def linear_decay(step: int, steps: int, start: float | None) -> float:
    """LR factor: 1 until ``start * steps``, then linearly down to (almost) 0 at ``steps`` — the
    pix2pix/CycleGAN schedule (constant for the first half, linear decay over the second)."""
    if start is None:
        return 1.0
    begin = int(start * steps)
    return 1.0 - max(0, step - begin) / float(steps - begin + 1)


def _line_step(line: str) -> int:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return 1 << 62


def train(cfg: DictConfig, out: Path, resume: bool = False, log: Callable[[str], None] | None = None) -> Path:
    started = distributed.env_dist().enabled
    try:
        return Trainer(cfg, out, resume=resume, log=log).run()
    finally:
        if started:
            distributed.teardown()


__all__ = ["Phase", "OptimizerSpec", "Trainer", "linear_decay", "train", "to_dict"]
