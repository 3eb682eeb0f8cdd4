"""One small registry class: every model, loss, dataset, metric and benchmark is found by name.

Registries are loud: an unknown name lists the valid ones, a duplicate registration fails at
import time instead of silently replacing an entry.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator

from .errors import GancvError, UnknownNameError


@dataclass(frozen=True)
class Entry:
    name: str
    obj: Any
    description: str


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, obj: Any = None, *, description: str = "") -> Any:
        """Register ``obj`` under ``name``; without ``obj`` it works as a decorator."""

        def add(target: Any) -> Any:
            if name in self._entries:
                raise GancvError(f"{self.kind} {name!r} is registered twice; pick another name")
            doc = description or (target.__doc__ or "").strip().split("\n")[0]
            self._entries[name] = Entry(name, target, doc)
            return target

        return add if obj is None else add(obj)

    def get(self, name: str) -> Any:
        try:
            return self._entries[name].obj
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names()) or '(none registered)'}"
            ) from None

    def create(self, name: str, **kwargs: Any) -> Any:
        factory: Callable[..., Any] = self.get(name)
        try:
            return factory(**kwargs)
        except TypeError as exc:
            # A wrong keyword is the user's mistake (a typo in an override), not a crash.
            if "unexpected keyword argument" in str(exc) or "missing" in str(exc):
                raise GancvError(f"{self.kind} {name!r}: {exc}") from None
            raise

    def names(self) -> list[str]:
        return sorted(self._entries)

    def describe(self) -> dict[str, str]:
        return {n: self._entries[n].description for n in self.names()}

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
