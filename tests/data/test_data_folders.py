"""folder:PATH with every kind of bad file, class sub-folders, the lazy path and ``check_data``."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

import gancv.data.folders as folders
import gancv.data.images as images
from gancv.data import check_data, load_data
from gancv.data.images import BadImage, decode_image
from gancv.errors import GancvError


def _load_quiet(spec, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bundle = load_data(spec, **kwargs)
    return bundle, [w for w in caught if issubclass(w.category, UserWarning)]


def test_bad_files_are_skipped_with_one_warning(tmp_path, fakes):
    kinds = fakes.write_bad_folder(tmp_path / "mixed")
    bundle, caught = _load_quiet(f"folder:{tmp_path / 'mixed'}", image_size=16)
    usable = len(kinds["good"]) + len(kinds["converted"])
    assert len(bundle) == usable and bundle.x.shape == (usable, 3, 16, 16)
    assert bundle.skipped == len(kinds["bad"])
    assert len(caught) == 1
    message = str(caught[0].message)
    assert f"skipped {len(kinds['bad'])} of" in message and "gancv data check" in message
    assert bundle.num_classes == 0 and bundle.y is None
    assert all(int(y) == -1 for _, y in (bundle.dataset[i] for i in range(len(bundle))))


def test_check_data_lists_every_problem_and_conversion(tmp_path, fakes):
    kinds = fakes.write_bad_folder(tmp_path / "mixed")
    report = check_data(f"folder:{tmp_path / 'mixed'}")
    problems = {p.split("/")[-1]: reason for p, reason in report.problems}
    converted = {p.split("/")[-1]: note for p, note in report.converted}
    assert sorted(problems) == sorted(kinds["bad"])
    assert sorted(converted) == sorted(kinds["converted"])
    assert report.total == 11 and report.usable == 6 and report.ok
    assert problems["empty.png"] == "empty file (0 bytes)"
    assert "not an image" in problems["notes.png"]
    assert "truncated" in problems["truncated.jpg"] and "truncated" in problems["truncated.png"]
    assert "decompression bomb" in problems["bomb.png"]
    assert converted["cmyk.jpg"] == "CMYK converted to RGB"
    assert "16-bit" in converted["gray16.png"]
    assert "palette" in converted["palette.png"]
    assert "alpha composited on white" in converted["alpha.png"]
    text = report.lines()
    assert text[0].endswith("11 files looked at, 6 usable, 5 with problems, 4 converted")
    assert sum(line.startswith("  problem ") for line in text) == 5
    assert report.to_dict()["ok"] is True
    bare = check_data(str(tmp_path / "mixed"))  # what the skip warning tells the user to run
    assert bare.spec == f"folder:{tmp_path / 'mixed'}" and bare.usable == 6


def test_truncated_files_fail_even_if_pillow_was_told_to_accept_them(tmp_path, fakes, monkeypatch):
    fakes.write_bad_folder(tmp_path / "mixed")
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(BadImage, match="truncated"):
        decode_image(tmp_path / "mixed" / "truncated.jpg")
    bundle, _ = _load_quiet(f"folder:{tmp_path / 'mixed'}", image_size=8)
    assert bundle.skipped == 5
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the caller's setting is restored


def test_pixel_limit_is_configurable(tmp_path, fakes, monkeypatch):
    Image.fromarray(fakes.noise(40, 40)).save(tmp_path / "big.png")
    monkeypatch.setattr(images, "MAX_PIXELS", 1000)
    with pytest.raises(BadImage, match="decompression bomb: declares 40x40"):
        decode_image(tmp_path / "big.png")
    assert decode_image(tmp_path / "big.png", max_pixels=2000)[0].size == (40, 40)


def test_pillow_bomb_warning_becomes_a_skip_not_a_warning(tmp_path, fakes, monkeypatch):
    Image.fromarray(fakes.noise(30, 50)).save(tmp_path / "warnband.png")  # 1,500 px: between MAX and 2*MAX
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any leaked DecompressionBombWarning fails the test
        with pytest.raises(BadImage, match="decompression bomb"):
            decode_image(tmp_path / "warnband.png")


def test_conversions_produce_sensible_pixels(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200  # red where opaque
    rgba[:2, :, 3] = 255  # top half opaque, bottom half fully transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    img, notes = decode_image(tmp_path / "a.png")
    arr = np.asarray(img)
    assert img.mode == "RGB" and notes
    assert tuple(arr[0, 0]) == (200, 0, 0) and tuple(arr[3, 0]) == (255, 255, 255)  # white background
    Image.fromarray(np.full((4, 4), 65535, np.uint16)).save(tmp_path / "w16.png")
    img, _ = decode_image(tmp_path / "w16.png")
    assert img.mode == "L" and np.asarray(img).min() == 255
    Image.fromarray(np.full((4, 4), 32768, np.uint16)).save(tmp_path / "m16.png")
    assert abs(int(np.asarray(decode_image(tmp_path / "m16.png")[0])[0, 0]) - 128) <= 1
    Image.new("1", (4, 4), 1).save(tmp_path / "bw.png")
    img, notes = decode_image(tmp_path / "bw.png")
    assert img.mode == "L" and np.asarray(img).min() == 255 and notes


def test_grayscale_folder_is_natively_one_channel(tmp_path, fakes):
    root = tmp_path / "gray"
    root.mkdir()
    for i in range(3):
        Image.fromarray(fakes.noise(20, 20, i)[..., 0]).save(root / f"{i}.png")
    bundle = load_data(f"folder:{root}")
    assert bundle.shape == (1, 20, 20)
    assert load_data(f"folder:{root}", channels=3).shape == (3, 20, 20)


def test_native_size_is_the_median_short_side(image_folder):
    bundle = load_data(f"folder:{image_folder}")
    # short sides 30, 30, 24, 50, 36, 28 -> median_low 30
    assert bundle.shape == (3, 30, 30) and len(bundle) == 6


def test_class_subfolders_give_labels(tmp_path, fakes):
    root = tmp_path / "pets"
    for cls, n in (("dogs", 2), ("cats", 3)):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(fakes.noise(16, 16, i)).save(root / cls / f"{i}.jpg")
    (root / "dogs" / "puppies").mkdir()
    Image.fromarray(fakes.noise(16, 16, 9)).save(root / "dogs" / "puppies" / "p.png")
    Image.fromarray(fakes.noise(16, 16, 8)).save(root / "loose.png")
    (root / ".hidden").mkdir()
    Image.fromarray(fakes.noise(16, 16, 7)).save(root / ".hidden" / "h.png")
    (root / "empty-class").mkdir()
    bundle = load_data(f"folder:{root}")
    assert bundle.class_names == ["cats", "dogs"] and bundle.num_classes == 2
    assert sorted(bundle.y.tolist()) == [0, 0, 0, 1, 1, 1]  # nested puppies count as dogs
    report = check_data(f"folder:{root}")
    assert report.usable == 6 and len(report.problems) == 1 and "loose.png" in report.problems[0][0]


@pytest.mark.parametrize("layout", ["missing", "file", "empty", "no-images"])
def test_unusable_folders_raise_user_errors(tmp_path, layout):
    path = tmp_path / "x"
    if layout == "file":
        path.write_text("hi")
    elif layout == "empty":
        path.mkdir()
    elif layout == "no-images":
        path.mkdir()
        (path / "a.txt").write_text("hi")
    with pytest.raises(GancvError) as err:
        load_data(f"folder:{path}")
    assert str(path) in str(err.value)
    with pytest.raises(GancvError):
        check_data(f"folder:{path}")


def test_all_bad_folder_stops_with_user_error(tmp_path, fakes):
    root = tmp_path / "bad"
    root.mkdir()
    (root / "a.png").write_bytes(b"")
    (root / "b.jpg").write_text("nope")
    fakes.png_bomb(root / "c.png")
    with pytest.raises(GancvError, match="none of the 3 image files"):
        load_data(f"folder:{root}")
    report = check_data(f"folder:{root}")
    assert not report.ok and len(report.problems) == 3
    assert "nothing usable" in report.lines()[-1]


def test_large_folders_are_lazy_and_never_crash(tmp_path, fakes, monkeypatch):
    monkeypatch.setattr(folders, "RESIDENT_LIMIT", 3)
    root = tmp_path / "many"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    for i in range(3):
        Image.fromarray(fakes.noise(20, 24, i)).save(root / "a" / f"{i}.png")
    Image.fromarray(fakes.noise(20, 20, 5)).save(root / "b" / "ok.png")
    data = (root / "a" / "0.png").read_bytes()
    (root / "b" / "trunc.png").write_bytes(data[: len(data) // 2])
    (root / "b" / "zero.png").write_bytes(b"")
    bundle, caught = _load_quiet(f"folder:{root}", image_size=12)
    assert bundle.x is None and bundle.y is None and bundle.skipped == 1  # the empty file, up front
    assert len(caught) == 1 and len(bundle) == 5
    assert bundle.shape == (3, 12, 12) and bundle.class_names == ["a", "b"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        items = [bundle.dataset[i] for i in range(len(bundle))]
        again = [bundle.dataset[i] for i in range(len(bundle))]
    assert len(caught) == 1 and "trunc.png" in str(caught[0].message)
    assert all(x.shape == (3, 12, 12) and x.dtype == torch.uint8 for x, _ in items)
    assert bundle.dataset.skipped == 1
    # b/trunc.png is the last file, so it is replaced by the next good one: index 0, class a
    assert [int(y) for _, y in items] == [0, 0, 0, 1, 0]
    assert torch.equal(items[4][0], items[0][0])
    assert all(torch.equal(a[0], b[0]) for a, b in zip(items, again))
    loader = torch.utils.data.DataLoader(bundle.dataset, batch_size=5)
    assert next(iter(loader))[0].shape == (5, 3, 12, 12)


def test_lazy_folder_native_size_from_sampled_headers(tmp_path, fakes, monkeypatch):
    monkeypatch.setattr(folders, "RESIDENT_LIMIT", 2)
    root = tmp_path / "lazy"
    root.mkdir()
    for i in range(4):
        Image.fromarray(fakes.noise(20, 30, i)[..., 0]).save(root / f"{i}.png")
    bundle = load_data(f"folder:{root}")
    assert bundle.x is None and bundle.shape == (1, 20, 20)


def test_folders_too_big_for_memory_go_lazy(image_folder, monkeypatch):
    monkeypatch.setattr(folders, "RESIDENT_BYTES", 1000)
    bundle = load_data(f"folder:{image_folder}")
    assert bundle.x is None and bundle.shape == (3, 30, 30)  # same native size as resident
    assert bundle.dataset[0][0].shape == (3, 30, 30)


def test_max_items_caps_a_folder(image_folder):
    bundle = load_data(f"folder:{image_folder}", max_items=2, image_size=8)
    assert len(bundle) == 2


def test_folder_paths_with_odd_characters(tmp_path):
    for arg in ["\x00", "a\x00b", "\ud800"]:
        with pytest.raises(GancvError):
            load_data(f"folder:{arg}")


def test_decode_all_keeps_order_and_turns_bad_images_into_reasons():
    # the one threaded decode behind folder:, paired: and `gancv data check`
    def decode(i):
        if i % 3 == 1:
            raise BadImage(f"bad {i}")
        return i * 10

    results = images.decode_all(decode, range(7))
    assert results == [(0, None), (None, "bad 1"), (20, None), (30, None), (None, "bad 4"), (50, None), (60, None)]
    with pytest.raises(ZeroDivisionError):  # only BadImage is a skipped file; a bug still surfaces
        images.decode_all(lambda i: 1 // i, range(3))
