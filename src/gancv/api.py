"""The Python API behind the CLI: ``train``, ``load``, ``make_config``."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig

from .config import load_config, make_config
from .errors import GancvError


def train(config: DictConfig | dict[str, Any] | str, out: str | Path | None = None, *, resume: str | Path | None = None,
          log: Callable[[str], None] | None = None) -> Path:
    """Train a model; returns the run directory.

    ``config``: a config from :func:`make_config`, a dict of overrides, or a preset name.
    ``resume``: a run directory to continue from its last complete checkpoint (``config`` may
    then be a dict of overrides, e.g. ``{"steps": 4000}`` to train longer).
    """
    from .training.loop import train as run_training

    if resume is not None:
        run = Path(resume)
        if not run.is_dir():
            raise GancvError(f"--resume {run}: no such run directory")
        saved = load_config(run / "config.yaml")
        extra = config if isinstance(config, dict) else {}
        cfg = make_config(None, {**_plain(saved), **extra})
        return run_training(cfg, run, resume=True, log=log)
    if isinstance(config, str):
        cfg = make_config(config)
    elif isinstance(config, dict):
        overrides = dict(config)
        cfg = make_config(overrides.pop("preset", None), overrides)
    else:
        cfg = config
    run = Path(out) if out is not None else Path("runs") / (cfg.preset or "run")
    return run_training(cfg, run, log=log)


def _plain(cfg: DictConfig) -> dict[str, Any]:
    from .config import to_dict

    return to_dict(cfg)


def load(path: str | Path, device: str = "auto") -> Any:
    from .tasks.inference import load as load_model

    return load_model(path, device)


def evaluate(run: str | Path | None = None, **kwargs: Any) -> dict[str, Any]:
    """Score a run's samples (or ``fake=PATH``) against ``real=DATA``; see :func:`gancv.metrics.evaluate`."""
    from .metrics import evaluate as run_eval

    return run_eval(run, **kwargs)


def synthesize(run: str | Path, per_class: int, out: str | Path, **kwargs: Any) -> Path:
    """``gancv augment``: write a labelled synthetic data set (ImageFolder + manifest.csv) from a
    class-conditional run; returns the manifest path. (Named apart from ``gancv.augment``, the
    DiffAugment/ADA module.)"""
    from .synthetic import augment as write_set

    return write_set(run, per_class, out, **kwargs)


__all__ = ["train", "load", "make_config", "evaluate", "synthesize"]
