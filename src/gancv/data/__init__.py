"""Data sets for gancv: one spec string (``digits``, ``toy2d:ring``, ``folder:PATH``...) -> a
:class:`DataBundle`. See ``DATASETS.describe()`` for every spec and DESIGN.md section 4.

Importing this package registers every loader in :data:`DATASETS`.
"""
from .core import DATASETS, DataBundle, LoadOptions, ResidentDataset, load_data, parse_spec, to_float
from . import builtin, folders, medmnist, pairs, torchvision_sets  # noqa: F401  (registers the loaders)
from .builtin import load_photos, toy2d_modes
from .images import ALPHA_BACKGROUND, IMAGE_EXTENSIONS, MAX_PIXELS
from .validate import DataReport, check_data

__all__ = [
    "ALPHA_BACKGROUND",
    "DATASETS",
    "DataBundle",
    "DataReport",
    "IMAGE_EXTENSIONS",
    "LoadOptions",
    "MAX_PIXELS",
    "ResidentDataset",
    "check_data",
    "load_data",
    "load_photos",
    "parse_spec",
    "to_float",
    "toy2d_modes",
]
