"""Model base class and registries.

The constructor is the config (as in diffusers' ``register_to_config``): every keyword a model
was built with is recorded in ``model.config``, and ``build(kind, config)`` rebuilds the same
network from it. No hand-written to/from-dict pairs.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
from typing import Any, Iterator

import torch
from torch import nn

from ..errors import GancvError
from ..registry import Registry

GENERATORS = Registry("generator")
DISCRIMINATORS = Registry("discriminator")
REGISTRIES = {"generator": GENERATORS, "discriminator": DISCRIMINATORS}


def _jsonable(value: Any) -> Any:
    from omegaconf import Container, OmegaConf

    if isinstance(value, Container):  # e.g. generator.hidden=[32,64] arrives as a ListConfig
        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


class ConfigModule(nn.Module):
    """An ``nn.Module`` that remembers the keywords it was constructed with."""

    config: dict[str, Any]
    registry_name: str = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        signature = inspect.signature(init)

        @functools.wraps(init)
        def recording_init(self: ConfigModule, *args: Any, **kw: Any) -> None:
            init(self, *args, **kw)
            # Only the most-derived class records, so subclasses calling super().__init__ don't overwrite.
            if type(self).__init__ is recording_init:
                bound = signature.bind(self, *args, **kw)
                bound.apply_defaults()
                arguments = dict(bound.arguments)
                arguments.pop("self")
                extra = arguments.pop("kwargs", {}) if "kwargs" in signature.parameters else {}
                self.config = {"name": type(self).registry_name, **_jsonable(arguments), **_jsonable(extra)}

        cls.__init__ = recording_init  # type: ignore[method-assign]


def register(kind: str, name: str, description: str = ""):
    """Class decorator: register a ConfigModule subclass as ``kind`` (generator/discriminator) ``name``."""

    def add(cls: type[ConfigModule]) -> type[ConfigModule]:
        cls.registry_name = name
        REGISTRIES[kind].register(name, cls, description=description)
        return cls

    return add


def register_variant(base: type[ConfigModule], kind: str, name: str, description: str, **defaults: Any) -> type[ConfigModule]:
    """Register ``name`` as ``base`` with other defaults (pix2pix's ``unet_128`` is its U-Net with 7
    down-samplings). The variant's signature is base's with those defaults, so the config it records
    still lists every keyword, and an option added to base reaches every variant without a copy."""
    signature = inspect.signature(base.__init__)
    unknown = set(defaults) - set(signature.parameters)
    if unknown:
        raise TypeError(f"{base.__name__} has no parameter(s) {sorted(unknown)}")
    signature = signature.replace(parameters=[p.replace(default=defaults.get(p.name, p.default))
                                              for p in signature.parameters.values()])

    def __init__(self: ConfigModule, *args: Any, **kwargs: Any) -> None:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        base.__init__(*bound.args, **bound.kwargs)

    __init__.__signature__ = signature  # type: ignore[attr-defined]  # what ConfigModule records from
    cls = type(base.__name__ + "_" + name.replace("-", "_"), (base,),
               {"__init__": __init__, "__doc__": f"{base.__name__} with {defaults}", "__module__": base.__module__})
    return register(kind, name, description)(cls)


def build(kind: str, config: dict[str, Any]) -> ConfigModule:
    """Rebuild a network from its recorded config (``{"name": ..., **kwargs}``)."""
    if kind not in REGISTRIES:
        raise GancvError(f"unknown model kind {kind!r}; choose one of {sorted(REGISTRIES)}")
    kwargs = dict(config)
    name = kwargs.pop("name", None)
    if not name:
        raise GancvError(f"{kind} config has no 'name'; set {kind}.name to one of {', '.join(REGISTRIES[kind].names())}")
    try:
        return REGISTRIES[kind].create(name, **kwargs)
    except (ValueError, AssertionError) as exc:
        if isinstance(exc, GancvError):
            raise
        raise GancvError(f"{kind} {name!r}: {exc}") from None


def check_shape(name: str, x: torch.Tensor, expected: tuple[int | None, ...]) -> None:
    """Loud shape check at a module boundary (None = any size)."""
    if x.dim() != len(expected) or any(e is not None and e != s for e, s in zip(expected, x.shape)):
        want = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
        raise GancvError(f"{name}: expected a tensor of shape {want}, got {tuple(x.shape)}")


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@contextlib.contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Modules in eval mode for the block, then back in the mode each was in: previews and
    projections run in the middle of training, where BatchNorm must keep training afterwards."""
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)
