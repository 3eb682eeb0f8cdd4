"""torchvision-layout sets read from real-format files; offline behaviour; the restricted unpickler."""
from __future__ import annotations

import os
import pickle
import socket
import time

import numpy as np
import pytest
import torch

import gancv.data.torchvision_sets as tv_sets
from gancv.data import check_data, load_data
from gancv.data.safe_pickle import load_array_pickle
from gancv.errors import GancvError


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_idx_sets_read_exact_pixels(tmp_path, fakes, name, folder, gz):
    written = fakes.write_mnist(tmp_path, folder, gz=gz)
    bundle = load_data(name, data_root=tmp_path)
    images, labels = written["train"]
    assert bundle.shape == (1, 28, 28) and len(bundle) == len(images)
    assert torch.equal(bundle.x[:, 0], torch.from_numpy(images))
    assert torch.equal(bundle.y, torch.from_numpy(labels.astype(np.int64)))
    assert bundle.num_classes == 10
    test = load_data(name, data_root=tmp_path, train=False)
    assert torch.equal(test.x[:, 0], torch.from_numpy(written["t10k"][0]))


def test_fashion_class_names(tmp_path, fakes):
    fakes.write_mnist(tmp_path, "FashionMNIST")
    assert load_data("fashion-mnist", data_root=tmp_path).class_names[-1] == "Ankle boot"


def test_mnist_resized(tmp_path, fakes):
    fakes.write_mnist(tmp_path)
    bundle = load_data("mnist", data_root=tmp_path, image_size=32, channels=3)
    assert bundle.x.shape == (20, 3, 32, 32)


@pytest.mark.parametrize("damage", ["magic", "short"])
def test_corrupt_idx_is_a_user_error(tmp_path, fakes, damage):
    fakes.write_mnist(tmp_path, gz=False)
    path = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    data = path.read_bytes()
    path.write_bytes(b"\x01\x02" + data[2:] if damage == "magic" else data[:-100])
    with pytest.raises(GancvError, match="train-images-idx3-ubyte"):
        load_data("mnist", data_root=tmp_path)


def test_cifar10_reads_py2_and_py3_batches(tmp_path, fakes):
    written = fakes.write_cifar(tmp_path)
    bundle = load_data("cifar10", data_root=tmp_path)
    images, labels = written["train"]
    assert bundle.shape == (3, 32, 32) and len(bundle) == 20
    assert torch.equal(bundle.x, torch.from_numpy(images))
    assert bundle.y.tolist() == labels
    assert bundle.class_names[0] == "airplane" and bundle.num_classes == 10
    test = load_data("cifar10", data_root=tmp_path, train=False)
    assert torch.equal(test.x, torch.from_numpy(written["test"][0]))


def test_cifar10_never_uses_plain_pickle(tmp_path, fakes, monkeypatch):
    fakes.write_cifar(tmp_path)

    def forbidden(*args, **kwargs):
        raise AssertionError("plain pickle.load used")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    assert len(load_data("cifar10", data_root=tmp_path)) == 20


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _EvalEvil:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_malicious_cifar_batch_is_refused_not_run(tmp_path, fakes, protocol):
    fakes.write_cifar(tmp_path)
    marker = tmp_path / "pwned"
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_1", "wb") as fh:
        pickle.dump({"data": _Evil(marker), "labels": [0]}, fh, protocol=protocol)
    with pytest.raises(GancvError, match="refusing to unpickle .*system"):
        load_data("cifar10", data_root=tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize("payload", [_EvalEvil(), {"x": np.array([object()], dtype=object)}, torch.zeros(2)])
def test_unpickler_refuses_anything_but_arrays(tmp_path, payload):
    path = tmp_path / "p.pkl"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(GancvError, match="refusing"):
        load_array_pickle(path)


def test_unpickler_reads_plain_containers(tmp_path):
    path = tmp_path / "ok.pkl"
    value = {"a": [1, 2.5, "s", b"b", (None, True)], "arr": np.arange(6, dtype=np.int16).reshape(2, 3)}
    path.write_bytes(pickle.dumps(value))
    loaded = load_array_pickle(path)
    assert loaded["a"] == value["a"] and np.array_equal(loaded["arr"], value["arr"])


@pytest.mark.parametrize("content", [b"", b"not a pickle at all", pickle.dumps([1, 2, 3])[:-3]])
def test_broken_pickles_are_user_errors(tmp_path, content):
    path = tmp_path / "broken"
    path.write_bytes(content)
    with pytest.raises(GancvError, match="broken"):
        load_array_pickle(path)


def test_cifar_batch_with_wrong_contents(tmp_path, fakes):
    fakes.write_cifar(tmp_path)
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_2", "wb") as fh:
        pickle.dump({"data": np.zeros((3, 10), np.uint8), "labels": [0, 1, 2]}, fh)
    with pytest.raises(GancvError, match="data_batch_2"):
        load_data("cifar10", data_root=tmp_path)


def test_svhn_maps_label_ten_to_zero(tmp_path, fakes):
    images = fakes.write_svhn(tmp_path)
    bundle = load_data("svhn", data_root=tmp_path)
    assert bundle.shape == (3, 32, 32) and len(bundle) == images.shape[3]
    assert bundle.y.tolist()[:10] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]
    assert torch.equal(bundle.x[2], torch.from_numpy(images[..., 2]).permute(2, 0, 1))
    assert len(load_data("svhn", data_root=tmp_path, train=False)) == 4


def test_celeba_is_lazy_and_center_cropped(tmp_path, fakes):
    fakes.write_celeba(tmp_path)
    bundle = load_data("celeba", data_root=tmp_path)
    assert bundle.x is None and bundle.shape == (3, 178, 178) and len(bundle) == 4  # partition 0 only
    x, y = bundle.dataset[1]
    assert x.shape == (3, 178, 178) and int(y) == -1
    assert abs(float(x.float().mean()) - 80) < 3  # the crop keeps only the uniform inner square
    small = load_data("celeba", data_root=tmp_path, image_size=32, train=False)
    assert len(small) == 1 and small.dataset[0][0].shape == (3, 32, 32)


OFFLINE = ["mnist", "fashion-mnist", "cifar10", "svhn", "celeba"]


@pytest.mark.parametrize("name", OFFLINE)
def test_missing_files_offline_give_clear_error_quickly(tmp_path, name):
    root = tmp_path / "nothing-here"
    start = time.monotonic()
    with pytest.raises(GancvError) as err:
        load_data(name, data_root=root)
    message = str(err.value)
    assert name in message and str(root) in message and "data_root" in message
    assert "could not be downloaded" in message and "\n" not in message
    assert time.monotonic() - start < 5


@pytest.mark.parametrize("name", OFFLINE)
def test_check_data_never_downloads(tmp_path, name, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("check_data tried to download")

    monkeypatch.setattr(tv_sets, "attempt_download", fail)
    with pytest.raises(GancvError, match="not found under"):
        check_data(name, data_root=tmp_path)


def test_attempt_download_offline_skips_the_fetch(monkeypatch, real_attempt_download):
    real = real_attempt_download  # the autouse fixture replaced the module attribute
    called = []
    monkeypatch.setattr(tv_sets, "reachable", lambda url, timeout=1.0: False)
    with pytest.raises(OSError, match="offline"):
        real("https://example.invalid/x", lambda: called.append(1))
    assert not called


def test_reachable_is_bounded_in_time(monkeypatch):
    def hang(*args, **kwargs):
        time.sleep(3)
        raise OSError("late")

    monkeypatch.setattr(socket, "create_connection", hang)
    start = time.monotonic()
    assert tv_sets.reachable("https://example.invalid/x", timeout=0.2) is False
    assert time.monotonic() - start < 1.5


def test_socket_timeout_is_restored():
    before = socket.getdefaulttimeout()
    with tv_sets._socket_timeout(7.0):
        assert socket.getdefaulttimeout() == 7.0
    assert socket.getdefaulttimeout() == before
