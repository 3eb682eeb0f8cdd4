"""The contract every loader shares: spec parsing, options, DataBundle, to_float, the registry."""
from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gancv.data import DATASETS, DataBundle, LoadOptions, load_data, parse_spec, to_float
from gancv.data.core import ResidentDataset, subset_indices
from gancv.errors import GancvError, UnknownNameError


def test_to_float_maps_uint8_to_minus_one_one():
    x = torch.tensor([0, 127, 128, 255], dtype=torch.uint8)
    y = to_float(x)
    assert y.dtype == torch.float32
    assert y[0] == -1.0 and y[-1] == 1.0
    assert torch.all((y >= -1) & (y <= 1))


def test_to_float_leaves_points_alone():
    points = torch.randn(5, 2)
    assert to_float(points) is points


def test_to_float_rejects_other_integer_types():
    with pytest.raises(TypeError):
        to_float(torch.zeros(3, dtype=torch.int64))


def test_unknown_prefix_lists_valid_names():
    with pytest.raises(UnknownNameError) as err:
        load_data("imagenet")
    message = str(err.value)
    assert "imagenet" in message and "digits" in message and "folder" in message


def test_existing_directory_as_spec_suggests_folder(tmp_path):
    with pytest.raises(UnknownNameError, match="folder:"):
        parse_spec(str(tmp_path))


@pytest.mark.parametrize("spec", ["digits:extra", "faces:x", "mnist:foo", "toy2d", "toy2d:spiral", "folder:", "medmnist:"])
def test_bad_arguments_are_user_errors(spec):
    with pytest.raises(GancvError):
        load_data(spec, max_items=4)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"image_size": 0},
        {"image_size": -4},
        {"image_size": 3.5},
        {"image_size": True},
        {"image_size": "32"},
        {"channels": 2},
        {"channels": 4},
        {"max_items": 0},
        {"max_items": -1},
        {"seed": "zero"},
        {"data_root": 5},
    ],
)
def test_bad_options_are_user_errors(kwargs):
    with pytest.raises(GancvError):
        load_data("digits", **kwargs)


def test_spec_must_be_a_string():
    for spec in (None, 3, "", "   "):
        with pytest.raises(GancvError):
            load_data(spec)


def test_every_entry_has_a_one_line_description():
    described = DATASETS.describe()
    assert described
    for name, text in described.items():
        assert text and "\n" not in text, name


def test_subset_indices_are_sorted_unique_and_seeded():
    a = subset_indices(100, 10, seed=0)
    assert len(a) == 10 and len(set(a.tolist())) == 10 and list(a) == sorted(a)
    assert (a == subset_indices(100, 10, seed=0)).all()
    assert not (a == subset_indices(100, 10, seed=1)).all()
    assert len(subset_indices(5, None, 0)) == 5 and len(subset_indices(5, 50, 0)) == 5


def test_databundle_checks_shapes():
    x = torch.zeros(4, 1, 8, 8, dtype=torch.uint8)
    with pytest.raises(ValueError):
        DataBundle("t", "image", (3, 8, 8), 0, [], x, None, ResidentDataset(x, None))
    with pytest.raises(ValueError):
        DataBundle("t", "image", (1, 8, 8), 2, ["a"], x, None, ResidentDataset(x, None))
    with pytest.raises(ValueError):
        DataBundle("t", "points", (1, 8, 8), 0, [], x, None, ResidentDataset(x, None))


def test_resident_dataset_gives_minus_one_when_unlabelled():
    x = torch.zeros(3, 2)
    _, y = ResidentDataset(x, None)[1]
    assert y.dtype == torch.int64 and y.item() == -1


def test_load_options_default_downloads():
    assert LoadOptions().download is True


@given(st.text(max_size=40))
def test_parse_spec_raises_only_user_errors(spec):
    try:
        prefix, arg = parse_spec(spec)
    except GancvError:
        return
    assert prefix in DATASETS
    assert spec.startswith(prefix) or spec.strip().startswith(prefix)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=st.sampled_from(sorted(DATASETS.names())), arg=st.text(max_size=20))
def test_random_arguments_raise_only_user_errors(prefix, arg, tmp_path_factory):
    try:
        existing = os.path.exists(os.path.expanduser(arg)) if arg.strip() else False
    except (ValueError, OSError):
        existing = False
    assume(not existing)  # why: folder:/ or folder:~ would scan a real tree, not test parsing
    root = tmp_path_factory.getbasetemp() / "empty-root"
    try:
        bundle = load_data(f"{prefix}:{arg}", max_items=4, image_size=8, data_root=root)
    except GancvError:
        return
    assert len(bundle) > 0  # only e.g. toy2d:ring gets here
