"""The offline sets: real digits, stacked digits, toy 2-D mixtures, LFW faces, photos."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from gancv.data import load_data, load_photos, toy2d_modes
from gancv.errors import GancvError


def test_digits_native_size_and_counts():
    bundle = load_data("digits")
    assert bundle.shape == (1, 8, 8) and len(bundle) == 1797
    assert bundle.num_classes == 10 and bundle.class_names == [str(d) for d in range(10)]
    assert int(bundle.x.max()) == 255 and int(bundle.x.min()) == 0
    assert torch.bincount(bundle.y).min() > 170  # every digit well represented


def test_digits_resized_look_like_white_on_black_digits():
    x = load_data("digits", image_size=32).x.float()
    assert x.shape == (1797, 1, 32, 32)
    # the 8x8 digits touch the top and bottom rows but leave the side columns blank
    border = torch.cat([x[..., :, :2].flatten(1), x[..., :, -2:].flatten(1)], dim=1).mean()
    centre = x[..., 8:24, 8:24].mean()
    assert border < 20 < centre  # dark background, bright strokes in the middle
    assert (x < 10).float().mean() > 0.4  # mostly black
    assert (x > 245).float().mean() > 0.03  # saturated white ink survives the resize


def test_digits_max_items_is_a_seeded_subset():
    a = load_data("digits", max_items=100, seed=1)
    b = load_data("digits", max_items=100, seed=2)
    assert len(a) == 100 and not torch.equal(a.x, b.x)
    assert len(torch.unique(a.y)) == 10  # a random subset keeps every class


def test_stacked_digits_labels_match_channels():
    digits = load_data("digits")
    by_image = {}
    for img, label in zip(digits.x[:, 0], digits.y):
        by_image.setdefault(img.numpy().tobytes(), set()).add(int(label))
    bundle = load_data("stacked-digits", max_items=200, seed=5)
    assert bundle.shape == (3, 8, 8) and bundle.num_classes == 1000
    for img, label in zip(bundle.x[:50], bundle.y[:50]):
        hundreds, tens, ones = int(label) // 100, int(label) // 10 % 10, int(label) % 10
        for channel, digit in zip(img, (hundreds, tens, ones)):
            assert digit in by_image[channel.numpy().tobytes()]


def test_stacked_digits_default_size_and_seed():
    bundle = load_data("stacked-digits", image_size=16)
    assert len(bundle) == 25_600 and bundle.x.shape == (25_600, 3, 16, 16)
    assert len(torch.unique(bundle.y)) > 900  # 25,600 draws over 1,000 modes cover nearly all
    other = load_data("stacked-digits", image_size=16, seed=1, max_items=64)
    assert not torch.equal(other.y, bundle.y[:64])
    test_split = load_data("stacked-digits", image_size=16, train=False, max_items=64)
    assert not torch.equal(test_split.y, bundle.y[:64])


@pytest.mark.parametrize("name,modes,std", [("ring", 8, 0.01), ("grid", 25, 0.05)])
def test_toy2d_modes_and_samples(name, modes, std):
    centres, sigma = toy2d_modes(name)
    assert centres.shape == (modes, 2) and sigma == std
    assert torch.equal(toy2d_modes(f"toy2d:{name}")[0], centres)
    bundle = load_data(f"toy2d:{name}")
    assert bundle.kind == "points" and bundle.shape == (2,) and len(bundle) == 100_000
    assert bundle.x.dtype == torch.float32 and bundle.num_classes == modes
    distance = (bundle.x - centres[bundle.y]).norm(dim=1)
    assert (distance < 4 * std).float().mean() > 0.999  # 2-D Gaussian: P(r > 4 sd) = e^-8
    assert (distance < 6 * std).all()
    nearest = torch.cdist(bundle.x, centres).argmin(dim=1)
    assert torch.equal(nearest, bundle.y)  # each label is the mode the sample belongs to
    counts = torch.bincount(bundle.y, minlength=modes).float()
    expected = len(bundle) / modes
    assert ((counts - expected).abs() / expected).max() < 0.06  # balanced modes


def test_toy2d_ring_geometry():
    centres, _ = toy2d_modes("ring")
    assert torch.allclose(centres.norm(dim=1), torch.ones(8))
    grid, _ = toy2d_modes("grid")
    assert sorted(set(grid[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]


def test_toy2d_determinism_and_splits():
    a = load_data("toy2d:grid", max_items=1000, seed=7)
    b = load_data("toy2d:grid", max_items=1000, seed=7)
    c = load_data("toy2d:grid", max_items=1000, seed=7, train=False)
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)
    assert load_data("toy2d:ring", image_size=64, channels=3, max_items=10).shape == (2,)  # ignored for points


def test_toy2d_modes_unknown_name():
    with pytest.raises(GancvError, match="ring"):
        toy2d_modes("spiral")


def test_faces_are_the_face_crops_plus_mirrors():
    bundle = load_data("faces")
    assert bundle.shape == (1, 25, 25) and len(bundle) == 200 and bundle.num_classes == 0 and bundle.y is None
    assert torch.equal(bundle.x[100:], bundle.x[:100].flip(-1))
    assert int(bundle.x.max()) > 200 and float(bundle.x.float().std()) > 30  # real contrast, not blank


def test_load_photos_are_real_colour_photographs():
    photos = load_photos()
    assert len(photos) >= 7
    for p in photos:
        assert p.dtype == np.uint8 and p.ndim == 3 and p.shape[2] == 3 and min(p.shape[:2]) >= 200
        # colour: the channels differ somewhere (grayscale or synthetic flat images would not)
        assert np.abs(p[..., 0].astype(int) - p[..., 2].astype(int)).mean() > 3
        assert not p.flags.writeable
    again = load_photos()
    assert all(a is b for a, b in zip(photos, again))  # same order, cached


def test_photos_crops():
    bundle = load_data("photos", image_size=24, max_items=50, seed=4)
    assert bundle.shape == (3, 24, 24) and len(bundle) == 50 and bundle.y is None
    assert len({x.numpy().tobytes() for x in bundle.x}) == 50  # distinct crops
    default = load_data("photos", max_items=3)
    assert default.shape == (3, 64, 64)
    assert not torch.equal(load_data("photos", image_size=24, max_items=50, seed=5).x, bundle.x)


def test_photo_groups_split_train_heldout_and_more():
    from gancv.data.builtin import MORE_PHOTO_NAMES, PHOTO_NAMES, PHOTOS_HELDOUT, photo_group

    everything = load_photos()
    assert len(PHOTO_NAMES) == len(everything) and set(PHOTOS_HELDOUT) <= set(PHOTO_NAMES)
    train, held = photo_group("train"), photo_group("heldout")
    assert len(train) == len(everything) - len(PHOTOS_HELDOUT) and len(held) == len(PHOTOS_HELDOUT)
    assert all(any(a is b for b in everything) for a in train + held)
    assert not any(a is b for a in train for b in held)  # disjoint: the benchmarks test on `heldout`
    assert [id(p) for p in photo_group("")] == [id(p) for p in everything]  # `photos` keeps its order
    more = photo_group("more")
    assert len(more) == len(MORE_PHOTO_NAMES)
    for p in more:
        assert p.dtype == np.uint8 and p.ndim == 3 and p.shape[2] == 3 and min(p.shape[:2]) >= 128
        assert not p.flags.writeable and float(p.std()) > 20
    # no view of a held-out photo sneaks in through `more` (scikit-image's cat is chelsea)
    small = [np.asarray(Image.fromarray(p).resize((32, 32))).astype(float) for p in held]
    assert all(np.abs(np.asarray(Image.fromarray(m).resize((32, 32))) - h).mean() > 20 for m in more for h in small)
    assert len(photo_group("train+more")) == len(train) + len(more)


def test_photos_group_specs_load_and_reject_bad_groups():
    bundle = load_data("photos:train+more", image_size=24, max_items=20, seed=1)
    assert bundle.shape == (3, 24, 24) and len(bundle) == 20 and bundle.name == "photos:train+more"
    assert load_data("photos:heldout", image_size=16, max_items=4).shape == (3, 16, 16)
    for bad in ("photos:cats", "photos:train+train", "photos:train+"):
        with pytest.raises(GancvError, match="photo group"):
            load_data(bad, image_size=16, max_items=2)


def test_photos_default_count():
    assert len(load_data("photos", image_size=16)) == 2000
