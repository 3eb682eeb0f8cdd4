"""Networks, one file per family, all registered by name (``gancv models`` lists them)."""
from . import dcgan, mlp, resnet, restoration, stylegan, translation  # noqa: F401  (importing registers the models)
from .base import DISCRIMINATORS, GENERATORS, ConfigModule, build, check_shape, count_parameters, register

__all__ = ["GENERATORS", "DISCRIMINATORS", "ConfigModule", "build", "check_shape", "count_parameters", "register"]
