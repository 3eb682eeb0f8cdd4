"""Reading CIFAR-style pickles without giving the file a way to run code.

``pickle.load`` calls whatever callable the file names (``os.system`` included), so a
downloaded or hand-me-down batch file could run anything. :class:`ArrayUnpickler` resolves
only the globals numpy needs to rebuild plain arrays; every other global is refused with a
:class:`GancvError` *before* it is called. Dicts, lists, strings and numbers need no
globals, so CIFAR batches (dicts of arrays, label lists and file names) load unchanged.
"""
from __future__ import annotations

import io
import os
import pickle
from typing import Any

import numpy as np

from ..errors import GancvError


def _allowed() -> dict[tuple[str, str], Any]:
    try:  # numpy >= 2 moved the internals to numpy._core
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    # why both spellings: CIFAR was pickled by numpy 1 under Python 2 ("numpy.core..."),
    # arrays pickled by numpy 2 say "numpy._core..."; protocol 5 uses _frombuffer.
    return {
        ("numpy.core.multiarray", "_reconstruct"): multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): multiarray._reconstruct,
        ("numpy.core.numeric", "_frombuffer"): numeric._frombuffer,
        ("numpy._core.numeric", "_frombuffer"): numeric._frombuffer,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }


class ArrayUnpickler(pickle.Unpickler):
    """An unpickler that can build numpy arrays and builtin containers, and nothing else."""

    _ALLOWED = _allowed()

    def __init__(self, file: io.BufferedIOBase, source: str):
        # why latin1: Python 2 pickles store array bytes as str; latin1 maps them 1:1 to bytes.
        super().__init__(file, encoding="latin1")
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise GancvError(
                f"{self.source}: refusing to unpickle {module}.{name} (only numpy arrays are allowed); "
                "the file is not a genuine CIFAR batch - delete it and download the data set again"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise GancvError(f"{self.source}: refusing a pickle with persistent references; it is not a CIFAR batch")


def load_array_pickle(path: str | os.PathLike) -> Any:
    """Unpickle ``path`` allowing only numpy arrays and builtin containers."""
    try:
        with open(path, "rb") as fh:
            return ArrayUnpickler(fh, str(path)).load()
    except GancvError:
        raise
    except OSError as exc:
        raise GancvError(f"{path}: cannot read the file ({exc.strerror or exc}); check its permissions") from None
    except Exception as exc:  # noqa: BLE001 - EOFError, UnpicklingError, bad array state...
        raise GancvError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc}); download the data set again") from None
