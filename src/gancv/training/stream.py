"""Batches for the training loop, resumable to the exact batch.

Each epoch is a permutation drawn from a generator seeded by (seed, epoch), so the stream's
whole state is two integers, (epoch, position), stored in every checkpoint. Small datasets are
held on the training device as one uint8 tensor and indexed there (no decoding, no host
round trips); large ones go through a DataLoader over the same permutation.

Several processes (``gancv.training.distributed``) and gradient accumulation split every
*global* batch the same way: the global batch at stream position ``pos`` is cut into
``world * accum`` micro-batches, and process ``rank`` takes micro-batch ``k * world + rank`` on
micro-step ``k``. The state stays the global (epoch, position), so a checkpoint resumes on any
number of processes, re-sharded, and one process with the same global batch sees the same data.
"""
from __future__ import annotations

import warnings
from typing import Iterator

import torch
from torch.utils.data import DataLoader

from ..data import DataBundle, to_float

Batch = tuple[torch.Tensor, "torch.Tensor | None"]


class _EpochSampler(torch.utils.data.Sampler):
    """Indices for the DataLoader, swapped in place each epoch so the loader (and its
    persistent workers) is built once per run instead of once per epoch."""

    def __init__(self) -> None:
        self.indices: list[int] = []

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class BatchStream:
    def __init__(self, bundle: DataBundle, batch_size: int, device: torch.device, seed: int, num_workers: int = 0,
                 rank: int = 0, world: int = 1, accum: int = 1):
        self.n = len(bundle)
        if self.n < batch_size:
            parts = world * accum
            fit = max(self.n - self.n % parts, parts)
            warnings.warn(f"{bundle.name} has only {self.n} items; using batch_size={fit} instead of {batch_size}")
            batch_size = fit
        self.batch_size, self.device, self.seed, self.num_workers = batch_size, device, seed, num_workers
        self.rank, self.world, self.accum = rank, world, accum
        self.micro = batch_size // (world * accum)
        self.k = 0  # micro-step within the current global batch
        self.bundle = bundle
        self.labelled = bundle.num_classes > 0
        self.resident = bundle.x is not None
        if self.resident:
            self.x = bundle.x.to(device)
            self.y = bundle.y.to(device) if (self.labelled and bundle.y is not None) else None
        self.epoch, self.pos = 0, 0
        self._set_epoch(0)
        self._loader: DataLoader | None = None
        self._iter: Iterator | None = None

    def _permutation(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=g)

    def _set_epoch(self, epoch: int) -> None:
        self._perm = self._permutation(epoch)
        # Resident data is indexed on the device: one copy per epoch, none per batch.
        self._perm_dev = self._perm.to(self.device) if self.resident else None
        self._iter = None

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state(self, state: dict[str, int]) -> None:
        self.epoch, self.pos, self.k = int(state["epoch"]), int(state["pos"]), 0
        self._set_epoch(self.epoch)

    def _advance_epoch(self) -> None:
        self.epoch, self.pos = self.epoch + 1, 0
        self._set_epoch(self.epoch)

    def _offset(self, k: int) -> int:
        return self.pos + (k * self.world + self.rank) * self.micro

    def next(self) -> Batch:
        """This process's next micro-batch (the whole batch with one process and grad_accum=1)."""
        if self.k == 0 and self.pos + self.batch_size > self.n:  # drop the ragged tail: equal shapes
            self._advance_epoch()
        if self.resident:
            start = self._offset(self.k)
            idx = self._perm_dev[start: start + self.micro]
            batch: Batch = (to_float(self.x[idx]), (self.y[idx] if self.y is not None else None))
        else:
            batch = self._next_loaded()
        self.k += 1
        if self.k == self.accum:
            self.k, self.pos = 0, self.pos + self.batch_size
        return batch

    def _next_loaded(self) -> Batch:
        if self._iter is None:
            if self._loader is None:
                self._sampler = _EpochSampler()
                workers = self.num_workers
                self._loader = DataLoader(
                    self.bundle.dataset, batch_size=self.micro, sampler=self._sampler, drop_last=True,
                    num_workers=workers, pin_memory=self.device.type == "cuda",
                    # Workers outlive epochs and keep a few batches decoded ahead of the step.
                    persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None,
                )
            # This process's micro-batches of every remaining global batch of the epoch, in order.
            perm = self._perm.tolist()
            indices: list[int] = []
            for start in range(self.pos, self.n - self.batch_size + 1, self.batch_size):
                for k in range(self.k if start == self.pos else 0, self.accum):
                    first = start + (k * self.world + self.rank) * self.micro
                    indices.extend(perm[first: first + self.micro])
            self._sampler.indices = indices
            self._iter = iter(self._loader)
        x, y = next(self._iter)
        x = to_float(x.to(self.device, non_blocking=True))
        return x, (y.to(self.device, non_blocking=True) if self.labelled else None)
