"""Data-parallel training across processes with torch.distributed (launched by ``torchrun``).

``torchrun --nproc_per_node N -m gancv train ...`` starts N copies of the same command; each
reads RANK/WORLD_SIZE/LOCAL_RANK from the environment, joins one process group (NCCL on GPUs,
gloo on CPUs), trains on its own shard of every global batch and averages gradients before
each optimiser step. ``batch_size`` is always the *global* batch, so a run means the same thing
on 1 or 8 processes and can be resumed on a different number of them.

Gradients are averaged with one all-reduce of a flattened buffer per optimiser step, as in
StyleGAN2-ADA's training loop, rather than by wrapping networks in DistributedDataParallel: a
GAN step runs D several times per step with different parts frozen, which DDP's per-forward
bookkeeping (unused-parameter detection, buffer broadcasts) handles badly, and tasks keep
calling their own modules unchanged.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ..errors import GancvError


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def env_dist() -> Dist:
    """The process's place in a torchrun launch (rank 0 of 1 when started plainly)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        raise GancvError("WORLD_SIZE/RANK/LOCAL_RANK must be integers; launch with torchrun") from None
    return Dist(rank, world, local)


def setup(device: torch.device) -> tuple[Dist, torch.device]:
    """Join the process group when launched by torchrun; returns the rank info and this rank's
    device (cuda:LOCAL_RANK on GPUs, so each process drives its own GPU)."""
    info = env_dist()
    if not info.enabled:
        return info, device
    if device.type == "cuda":
        if torch.cuda.device_count() <= info.local_rank:
            raise GancvError(f"LOCAL_RANK={info.local_rank} but this node has {torch.cuda.device_count()} GPU(s); "
                             "use --nproc_per_node <= the number of GPUs")
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30),
                                device_id=device if device.type == "cuda" else None)
    return info, device


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def micro_batch(batch_size: int, world: int, accum: int) -> int:
    """Per-process, per-micro-step batch; the global batch must split evenly."""
    parts = world * accum
    if batch_size % parts:
        lower = batch_size - batch_size % parts
        raise GancvError(
            f"batch_size={batch_size} does not split over {world} process(es) x grad_accum={accum}; "
            f"use a multiple of {parts}, e.g. batch_size={max(lower, parts)} or {lower + parts}")
    return batch_size // parts


def broadcast_module(module: nn.Module, src: int = 0) -> None:
    """Make every rank hold rank ``src``'s parameters and buffers (start and resume from one state)."""
    if not dist.is_initialized():
        return
    for tensor in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(tensor.data, src=src)


def average_gradients(params: list[torch.nn.Parameter], world: int) -> None:
    """Average the gradients of ``params`` over all ranks with one all-reduce.

    A parameter without a gradient on this rank contributes zeros, so every rank sends a
    buffer of the same layout (a mismatch would deadlock the collective).
    """
    if world <= 1:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat.div_(world)
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        chunk = flat[offset: offset + n].view_as(g)
        if p.grad is None:
            p.grad = chunk.clone()
        else:
            p.grad.copy_(chunk)
        offset += n


def average_scalars(values: dict[str, torch.Tensor], world: int) -> dict[str, torch.Tensor]:
    """Mean of logged scalars over ranks (called at log steps only: it is a sync point)."""
    if world <= 1 or not values:
        return values
    keys = sorted(values)
    stacked = torch.stack([values[k].detach().float().reshape(()) for k in keys])
    dist.all_reduce(stacked)
    stacked.div_(world)
    return {k: stacked[i] for i, k in enumerate(keys)}


def agree(reason: str | None) -> str | None:
    """One decision for all ranks: a reason if any rank has one (a collective, so every rank calls it)."""
    if not dist.is_initialized():
        return reason
    flag = torch.tensor([0.0 if reason is None else 1.0],
                        device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    if flag.item() and reason is None:
        return "another process diverged"
    return reason


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def convert_sync_bn(net: nn.Module, device: torch.device) -> nn.Module:
    if device.type != "cuda":
        raise GancvError("sync_bn=true needs CUDA (torch's SyncBatchNorm has no CPU kernel); "
                         "drop it on CPU, or use networks without BatchNorm for exact multi-process equivalence")
    return nn.SyncBatchNorm.convert_sync_batchnorm(net)
