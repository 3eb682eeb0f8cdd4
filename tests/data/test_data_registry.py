"""Every registered data set, loaded offline from tiny real-format files: shape, dtype, range,
labels and determinism. A new registry entry is covered as soon as it has an example spec."""
from __future__ import annotations

import pytest
import torch

from gancv.data import DATASETS, check_data, load_data
from gancv.errors import GancvError

NAMES = DATASETS.names()


def test_every_dataset_has_an_example(example_specs):
    specs, _ = example_specs
    assert sorted(specs) == NAMES


def _load(example_specs, name, **kwargs):
    specs, root = example_specs
    return load_data(specs[name], data_root=root, **kwargs)


def _items(bundle, n=4):
    return [bundle.dataset[i] for i in range(min(n, len(bundle)))]


@pytest.mark.parametrize("name", NAMES)
def test_loads_with_promised_types(example_specs, name):
    bundle = _load(example_specs, name, max_items=16, image_size=16)
    assert len(bundle) > 0
    assert bundle.num_classes == len(bundle.class_names)
    for x, y in _items(bundle):
        assert y.dtype == torch.int64 and y.ndim == 0
        assert -1 <= int(y) < max(bundle.num_classes, 1) or (bundle.num_classes == 0 and int(y) == -1)
        if bundle.kind == "points":
            assert x.dtype == torch.float32 and tuple(x.shape) == (2,)
        else:
            assert x.dtype == torch.uint8 and tuple(x.shape) == bundle.shape
    if bundle.kind == "image":
        assert bundle.shape[1:] == (16, 16)
        assert bundle.image_shape[0] in (1, 3)
    else:
        assert bundle.shape == (2,)
    if bundle.x is not None:
        assert len(bundle.x) == len(bundle)
        if bundle.kind == "image":
            assert bundle.x.dtype == torch.uint8
        if bundle.num_classes:
            assert bundle.y is not None and bundle.y.dtype == torch.int64 and len(bundle.y) == len(bundle)
            assert int(bundle.y.min()) >= 0 and int(bundle.y.max()) < bundle.num_classes
        else:
            assert bundle.y is None


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_for_a_seed(example_specs, name):
    a = _load(example_specs, name, max_items=8, image_size=8, seed=3)
    b = _load(example_specs, name, max_items=8, image_size=8, seed=3)
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(_items(a, 8), _items(b, 8)):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


@pytest.mark.parametrize("name", NAMES)
def test_any_integer_seed_works(example_specs, name):
    for seed in (-1, 2**70):
        assert len(_load(example_specs, name, max_items=2, image_size=8, seed=seed)) > 0


@pytest.mark.parametrize("name", [n for n in NAMES if n != "toy2d"])
@pytest.mark.parametrize("channels", [1, 3])
def test_channel_conversion(example_specs, name, channels):
    if name == "stacked-digits" and channels == 1:
        with pytest.raises(GancvError):
            _load(example_specs, name, max_items=4, image_size=8, channels=channels)
        return
    bundle = _load(example_specs, name, max_items=4, image_size=8, channels=channels)
    assert bundle.image_shape == (channels, 8, 8)
    x, _ = bundle.dataset[0]
    assert x.shape == bundle.shape
    if channels == 3 and bundle.x is not None and name in ("digits", "faces", "mnist", "fashion-mnist"):
        assert torch.equal(bundle.x[:, 0], bundle.x[:, 1])  # gray replicated, not recoloured


@pytest.mark.parametrize("name", NAMES)
def test_check_data_reports_every_set(example_specs, name):
    specs, root = example_specs
    report = check_data(specs[name], data_root=root)
    assert report.ok and report.usable > 0 and not report.problems
    assert report.lines()[0].startswith(specs[name])


def test_dataloader_batches(example_specs):
    bundle = _load(example_specs, "folder", image_size=16)
    loader = torch.utils.data.DataLoader(bundle.dataset, batch_size=4)
    x, y = next(iter(loader))
    assert x.shape == (4, 3, 16, 16) and x.dtype == torch.uint8 and y.dtype == torch.int64
