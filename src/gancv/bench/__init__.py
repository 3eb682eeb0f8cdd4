"""Benchmarks behind ``gancv benchmark NAME``: each takes (quick, device, log) and returns a dict
of its figures plus the settings that produced them (DESIGN §6)."""
from ..registry import Registry

BENCHMARKS = Registry("benchmark")

from . import conditional, evaluation, generation, restoration, stylegan, throughput, translation  # noqa: E402,F401  (registers benchmarks)
from . import serve, watermark  # noqa: E402,F401
from . import modes  # noqa: E402,F401  (mode-coverage, stacked-digits)

__all__ = ["BENCHMARKS"]
