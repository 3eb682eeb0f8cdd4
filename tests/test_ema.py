"""Generator EMA: half-life in images, BatchNorm statistics copied, export and sampling use EMA weights."""
import pytest
import torch
from safetensors.torch import load_file

import gancv
from gancv.config import make_config
from gancv.training.checkpoint import checkpoint_dirs
from gancv.training.ema import EMA, ema_beta


def test_half_life_in_images_is_independent_of_batch_size():
    # After ema_kimg*1000 images the old weights have half the say, whatever the batch size.
    for batch in (16, 64, 256):
        assert ema_beta(batch, 2.0) ** (2000 / batch) == pytest.approx(0.5)


def test_update_moves_towards_the_model_and_copies_buffers():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3))
    ema = EMA(net, batch_size=1000, ema_kimg=1.0)  # beta = 0.5
    before = ema.shadow[0].weight.clone()
    with torch.no_grad():
        net[0].weight.add_(1.0)
        net[1].running_mean.fill_(3.0)
    ema.update(net)
    assert torch.allclose(ema.shadow[0].weight, before + 0.5)
    assert torch.equal(ema.shadow[1].running_mean, net[1].running_mean)
    assert not ema.shadow.training and not any(p.requires_grad for p in ema.shadow.parameters())


def test_rampup_caps_the_half_life_at_a_fraction_of_the_images_seen():
    net = torch.nn.Linear(2, 2)
    ema = EMA(net, batch_size=100, ema_kimg=10.0, rampup=0.05)
    # After 10k images the half-life is 0.05 * 10k = 500 images; from 200k images on it is ema_kimg's 10k.
    assert ema.beta_at(10_000) == pytest.approx(ema_beta(100, 0.5))
    assert ema.beta_at(200_000) == ema.beta_at(10**9) == pytest.approx(ema_beta(100, 10.0))
    assert EMA(net, 100, 10.0).beta_at(10_000) == ema_beta(100, 10.0)  # no ramp-up: constant


def test_export_and_sampling_use_the_ema_weights(tiny_overrides, tmp_path):
    run = gancv.train(make_config(None, tiny_overrides + ["ema_kimg=0.02"]), out=tmp_path / "ema")
    last = checkpoint_dirs(run)[-1]
    ema = load_file(str(last / "generator_ema.safetensors"))
    raw = load_file(str(last / "generator.safetensors"))
    exported = load_file(str(run / "model" / "generator.safetensors"))
    assert all(torch.equal(exported[k], ema[k]) for k in ema)
    assert any(not torch.equal(raw[k], ema[k]) for k in raw if raw[k].is_floating_point())
    model = gancv.load(run, device="cpu")
    assert all(torch.equal(model.generator.state_dict()[k], ema[k]) for k in ema)


def test_update_does_not_walk_the_module_tree_every_step():
    # The tensors are listed at the first update: walking the tree on every step was ~5 % of a
    # toy2d MLP step. In-place changes to the model's tensors still reach the average.
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    ema = EMA(net, batch_size=1000, ema_kimg=1.0)  # beta = 0.5
    ema.update(net)

    def walked(*args, **kwargs):
        raise AssertionError("the module tree was walked again")

    for module in (net, ema.shadow):
        module.parameters = module.buffers = walked  # instance attributes shadow the methods
    before = ema.shadow[0].weight.clone()
    with torch.no_grad():
        net[0].weight.copy_(before + 2.0)
        net[1].running_var.fill_(5.0)
    ema.update(net)
    assert torch.allclose(ema.shadow[0].weight, before + 1.0)
    assert torch.equal(ema.shadow[1].running_var, net[1].running_var)
