"""Batches for the training loop, resumable to the exact batch.

Each epoch is a permutation drawn from a generator seeded by (seed, epoch), so the stream's
whole state is two integers, (epoch, position), stored in every checkpoint. Small datasets are
held on the training device as one uint8 tensor and indexed there (no decoding, no host
round trips); large ones go through a DataLoader over the same permutation.
"""
from __future__ import annotations

import warnings
from typing import Iterator

import torch
from torch.utils.data import DataLoader

from ..data import DataBundle, to_float

Batch = tuple[torch.Tensor, "torch.Tensor | None"]


class BatchStream:
    def __init__(self, bundle: DataBundle, batch_size: int, device: torch.device, seed: int, num_workers: int = 0):
        self.n = len(bundle)
        if self.n < batch_size:
            warnings.warn(f"{bundle.name} has only {self.n} items; using batch_size={self.n} instead of {batch_size}")
            batch_size = self.n
        self.batch_size, self.device, self.seed, self.num_workers = batch_size, device, seed, num_workers
        self.bundle = bundle
        self.labelled = bundle.num_classes > 0
        self.resident = bundle.x is not None
        if self.resident:
            self.x = bundle.x.to(device)
            self.y = bundle.y.to(device) if (self.labelled and bundle.y is not None) else None
        self.epoch, self.pos = 0, 0
        self._perm = self._permutation(0)
        self._iter: Iterator | None = None

    def _permutation(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=g)

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state(self, state: dict[str, int]) -> None:
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])
        self._perm = self._permutation(self.epoch)
        self._iter = None

    def _advance_epoch(self) -> None:
        self.epoch, self.pos = self.epoch + 1, 0
        self._perm = self._permutation(self.epoch)
        self._iter = None

    def next(self) -> Batch:
        if self.pos + self.batch_size > self.n:  # drop the ragged tail: every batch has the same shape
            self._advance_epoch()
        if self.resident:
            idx = self._perm[self.pos : self.pos + self.batch_size].to(self.device, non_blocking=True)
            self.pos += self.batch_size
            x = to_float(self.x[idx])
            return x, (self.y[idx] if self.y is not None else None)
        if self._iter is None:
            loader = DataLoader(
                self.bundle.dataset,
                batch_size=self.batch_size,
                sampler=self._perm[self.pos :].tolist(),
                drop_last=True,
                num_workers=self.num_workers,
                pin_memory=self.device.type == "cuda",
            )
            self._iter = iter(loader)
        x, y = next(self._iter)
        self.pos += self.batch_size
        x = to_float(x.to(self.device, non_blocking=True))
        return x, (y.to(self.device, non_blocking=True) if self.labelled else None)
