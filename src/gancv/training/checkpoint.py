"""Checkpoints that survive ``kill -9`` at any instant, and never unpickle user files.

Layout (DESIGN §5): ``checkpoints/step-NNNNNNN/{<network>.safetensors, state.pt}``. A checkpoint
is written into a hidden temporary directory and renamed into place in one ``os.replace``, so a
directory named ``step-*`` is always complete. Weights are safetensors; optimiser/RNG/step state
is a dict of tensors and plain numbers read back with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .. import __version__
from ..errors import GancvError

STEP_DIR = re.compile(r"^step-(\d{7,})$")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_with(path: Path, write: Callable[[str], None]) -> None:
    """Run ``write(tmp_path)`` on a hidden temporary file beside ``path``, fsync it, rename it into
    place: readers see the old file or the complete new one, never a torn write."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write_with(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def state_dict_for_saving(module: nn.Module) -> dict[str, torch.Tensor]:
    # safetensors refuses shared or non-contiguous storage; clone keeps the file self-contained.
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}


def save_weights(module: nn.Module, path: Path) -> None:
    atomic_write_with(path, lambda tmp: save_file(state_dict_for_saving(module), tmp))


def load_weights(module: nn.Module, path: Path, device: torch.device | str = "cpu") -> None:
    path = Path(path)
    if not path.is_file():
        raise GancvError(f"weights file {path} is missing; the run or model directory is incomplete")
    try:
        tensors = load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError) as exc:
        raise GancvError(
            f"{path} is not a readable safetensors file ({exc}); it may be truncated or not a gancv checkpoint — "
            "use an earlier checkpoint or re-export the model"
        ) from None
    try:
        module.load_state_dict(tensors)
    except RuntimeError as exc:
        first = str(exc).strip().split("\n")[0]
        raise GancvError(f"{path} does not match the network in its config.json ({first})") from None


def save_state(state: dict[str, Any], path: Path) -> None:
    atomic_write_with(path, lambda tmp: torch.save(state, tmp))


def export_model(model_dir: Path, weights: dict[str, nn.Module], info: dict[str, Any]) -> None:
    """An exported model (DESIGN §5): ``<name>.safetensors`` per network, then ``config.json``
    (``info`` and the gancv version that wrote it) last, so a directory with a config always has
    its weights."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    for name, module in weights.items():
        save_weights(module, model_dir / f"{name}.safetensors")
    atomic_write_json(model_dir / "config.json", {**info, "gancv_version": __version__})


def load_state(path: Path) -> dict[str, Any]:
    try:
        # weights_only: tensors, numbers, strings and containers only; nothing is unpickled as code.
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise GancvError(f"{path} is missing; the checkpoint is incomplete") from None
    except Exception as exc:  # a corrupt or hostile file raises UnpicklingError, RuntimeError, EOFError, ...
        raise GancvError(f"{path} is not a valid gancv training state ({type(exc).__name__}); use an earlier checkpoint") from None


def checkpoint_dirs(run: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(run) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and STEP_DIR.match(p.name) and (p / "state.pt").is_file()]
    return sorted(found, key=lambda p: int(STEP_DIR.match(p.name).group(1)))  # type: ignore[union-attr]


def save_checkpoint(run: Path, step: int, networks: dict[str, nn.Module], state: dict[str, Any], keep: int) -> Path:
    root = Path(run) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-step-*"):  # left behind by a kill during an earlier save
        shutil.rmtree(stale, ignore_errors=True)
    final = root / f"step-{step:07d}"
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".tmp-step-{step:07d}-"))
    try:
        for name, module in networks.items():
            save_weights(module, tmp / f"{name}.safetensors")
        save_state(state, tmp / "state.pt")
        _fsync_dir(tmp)
        if final.exists():  # re-saving the same step (e.g. the final step after a resume)
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in checkpoint_dirs(run)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final
