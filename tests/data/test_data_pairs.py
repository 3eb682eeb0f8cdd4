"""paired:/unpaired: folders in the public layouts (pix2pix facades/maps, CycleGAN horse2zebra),
their bad inputs, and the offline photo-style pairs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from gancv.data import check_data, load_data
from gancv.data.styles import STYLES, cartoonise
from gancv.errors import GancvError


def rgb(h, w, seed):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def write_side_by_side(root, split, n, h=20):
    (root / split).mkdir(parents=True)
    for i in range(n):
        rgb(h, 2 * h, i).save(root / split / f"{i}.jpg", quality=95)


def write_ab(root, n=3, size=(20, 24)):
    for side in ("A", "B"):
        (root / side).mkdir(parents=True)
        for i in range(n):
            rgb(size[0], size[1], i + (50 if side == "B" else 0)).save(root / side / f"{i}.png")


def write_unpaired(root, n_a=3, n_b=4, splits=("train",)):
    for split in splits:
        for side, n in (("A", n_a), ("B", n_b)):
            (root / f"{split}{side}").mkdir(parents=True)
            for i in range(n):
                rgb(22, 26, i).save(root / f"{split}{side}" / f"{side}{i}.jpg")


def test_ab_folders_pair_by_name_and_stack_channels(tmp_path):
    write_ab(tmp_path)
    bundle = load_data(f"paired:{tmp_path}", image_size=16)
    assert bundle.shape == (6, 16, 16) and bundle.image_shape == (3, 16, 16) and len(bundle) == 3
    a = np.array(Image.open(tmp_path / "A" / "1.png").resize((16, 16)))
    # the A half of item 1 is A/1.png, the B half is B/1.png (not some other file)
    got_a = bundle.x[1, :3].permute(1, 2, 0).numpy().astype(int)
    assert np.abs(got_a - a.astype(int)).mean() < 40
    assert not torch.equal(bundle.x[1, :3], bundle.x[1, 3:])


def test_side_by_side_with_train_and_test_splits(tmp_path):
    # the released facades/maps layout: PATH/train/*.jpg, PATH/val/*.jpg, A on the left
    write_side_by_side(tmp_path, "train", 4)
    write_side_by_side(tmp_path, "val", 2)
    train = load_data(f"paired:{tmp_path}", image_size=16)
    test = load_data(f"paired:{tmp_path}", image_size=16, train=False)
    assert len(train) == 4 and len(test) == 2 and train.shape == (6, 16, 16)
    full = np.array(Image.open(tmp_path / "train" / "0.jpg"))
    assert abs(float(train.x[0, :3].float().mean()) - full[:, :20].mean()) < 8
    assert abs(float(train.x[0, 3:].float().mean()) - full[:, 20:].mean()) < 8


def test_missing_partner_is_an_error_naming_the_file(tmp_path):
    write_ab(tmp_path)
    (tmp_path / "B" / "2.png").unlink()
    with pytest.raises(GancvError, match=r"no partner.*2\.\*"):
        load_data(f"paired:{tmp_path}", image_size=16)


def test_pairs_of_different_sizes_are_an_error(tmp_path):
    write_ab(tmp_path)
    rgb(30, 30, 9).save(tmp_path / "B" / "1.png")
    with pytest.raises(GancvError, match="differ in size"):
        load_data(f"paired:{tmp_path}", image_size=16)


def test_grayscale_into_rgb_and_bad_pair_skipped(tmp_path):
    write_ab(tmp_path, n=4)
    Image.open(tmp_path / "A" / "0.png").convert("L").save(tmp_path / "A" / "0.png")
    (tmp_path / "B" / "3.png").write_bytes(b"not an image")
    with pytest.warns(UserWarning, match="skipped 1 of 4 pairs"):
        bundle = load_data(f"paired:{tmp_path}", image_size=16)
    assert len(bundle) == 3 and bundle.skipped == 1
    assert torch.equal(bundle.x[0, 0], bundle.x[0, 1])  # gray replicated into the RGB channels


def test_one_side_empty_or_missing(tmp_path):
    write_ab(tmp_path)
    for f in (tmp_path / "B").iterdir():
        f.unlink()
    with pytest.raises(GancvError, match="contains no images"):
        load_data(f"paired:{tmp_path}")
    with pytest.raises(GancvError, match="not a directory"):
        load_data(f"paired:{tmp_path / 'nope'}")


def test_unpaired_cyclegan_layout(tmp_path):
    write_unpaired(tmp_path, splits=("train", "test"))
    bundle = load_data(f"unpaired:{tmp_path}", image_size=16)
    other = bundle.extra["B"]
    assert bundle.shape == other.shape == (3, 16, 16)
    assert len(bundle) == 3 and len(other) == 4 and bundle.num_classes == 0
    test = load_data(f"unpaired:{tmp_path}", image_size=16, train=False)
    assert len(test) == 3
    assert check_data(f"unpaired:{tmp_path}").usable == 3


@pytest.mark.parametrize("problem", ["empty", "missing"])
def test_unpaired_one_side_empty_or_missing(tmp_path, problem):
    write_unpaired(tmp_path)
    for f in (tmp_path / "trainB").iterdir():
        f.unlink()
    if problem == "missing":
        (tmp_path / "trainB").rmdir()
    with pytest.raises(GancvError, match="trainB"):
        load_data(f"unpaired:{tmp_path}")


def test_unpaired_needs_test_split_for_evaluation(tmp_path):
    write_unpaired(tmp_path)
    with pytest.raises(GancvError, match="testA"):
        load_data(f"unpaired:{tmp_path}", train=False)


def test_photo_styles_are_the_documented_transforms():
    assert set(STYLES.names()) == {"cartoon", "gray", "colorize"}
    pairs = load_data("photo-pairs:gray", image_size=16, max_items=6)
    a, b = pairs.x[:, :3], pairs.x[:, 3:]
    assert torch.equal(b[:, 0], b[:, 1]) and not torch.equal(a[:, 0], a[:, 1])
    col = load_data("photo-pairs:colorize", image_size=16, max_items=6)
    assert torch.equal(col.x[:, :3], b) and torch.equal(col.x[:, 3:], a)  # the inverse task, same crops
    cartoon = cartoonise(a)
    assert set(torch.unique(cartoon).tolist()) <= {0, 32, 96, 160, 224}


def test_photo_unpaired_draws_independent_crops():
    bundle = load_data("photo-unpaired:gray", image_size=16, max_items=8)
    paired = load_data("photo-pairs:gray", image_size=16, max_items=8)
    assert torch.equal(bundle.x, paired.x[:, :3])
    assert not torch.equal(bundle.extra["B"].x, paired.x[:, 3:])  # no A has its true partner
    with pytest.raises(GancvError, match="choose a style"):
        load_data("photo-pairs:sepia")
