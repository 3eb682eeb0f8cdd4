"""Device selection with an error a user can act on."""
from __future__ import annotations

import torch

from .errors import GancvError


def resolve_device(name: str = "auto") -> torch.device:
    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise GancvError(f"--device {name} asked for, but torch sees no CUDA GPU here; use --device cpu or auto")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise GancvError(f"unknown device {name!r}; use auto, cpu or cuda")
