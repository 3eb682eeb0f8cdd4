"""Tasks: what a kind of model trains and how it is used afterwards.

A task class is constructed as ``Task(cfg, bundle, device, rng)`` and exposes ``networks``,
``optimizers`` (name -> OptimizerSpec), ``ema_network`` (a name, a tuple of names or None),
``phases()``, ``preview(nets, path)`` and ``export(dir, nets)``. Its ``load(model_dir, device)``
classmethod returns the inference object that ``gancv.load`` hands to users.
"""
from ..registry import Registry

TASKS = Registry("task")

from . import generation, restoration, stylegan, translation  # noqa: E402,F401  (registers the tasks)

__all__ = ["TASKS"]
