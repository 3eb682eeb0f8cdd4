"""Conditional generation end to end: train, then sample/interpolate a requested class via the CLI."""
import json

import numpy as np
import pytest
import torch

import gancv
from gancv.cli import main
from gancv.config import PRESETS, make_config

TINY_COND = ["image_size=16", "batch_size=16", "steps=4", "log_every=2", "sample_every=4", "checkpoint_every=4",
             "progress=false", "device=cpu", "generator.width=8", "discriminator.width=8"]


@pytest.fixture(scope="module")
def cond_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cond") / "run"
    return gancv.train(make_config("cgan-digits", TINY_COND), out=out)


def test_sample_class_writes_that_label(cond_run, tmp_path, capsys):
    out = tmp_path / "s.npz"
    assert main(["sample", str(cond_run), "-n", "6", "--class", "3", "--out", str(out), "--seed", "1",
                 "--truncation", "0.7", "--device", "cpu"]) == 0
    data = np.load(out)
    assert data["samples"].shape == (6, 16, 16, 1) and data["samples"].dtype == np.uint8
    assert (data["labels"] == 3).all()
    model = gancv.load(cond_run, device="cpu")
    assert torch.equal(model.sample(4, labels=3, seed=2), model.sample(4, labels=3, seed=2))
    assert not torch.equal(model.sample(4, labels=3, seed=2), model.sample(4, labels=5, seed=2))


def test_interpolate_class(cond_run, tmp_path):
    out = tmp_path / "walk.png"
    assert main(["interpolate", str(cond_run), "--out", str(out), "--steps", "3", "--rows", "2", "--class", "7",
                 "--device", "cpu"]) == 0
    assert out.is_file()


@pytest.mark.parametrize("args,message", [(["--class", "10"], "out of range"), (["--class", "-1"], "out of range")])
def test_bad_class_exits_2(cond_run, tmp_path, capsys, args, message):
    code = main(["sample", str(cond_run), "-n", "2", "--out", str(tmp_path / "x.png"), "--device", "cpu", *args])
    assert code == 2 and message in capsys.readouterr().err


def test_class_on_unconditional_model_exits_2(trained_run, tmp_path, capsys):
    code = main(["sample", str(trained_run), "-n", "2", "--class", "1", "--out", str(tmp_path / "x.png"),
                 "--device", "cpu"])
    assert code == 2 and "unconditional" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("conditioning", ["projection", "acgan"])
def test_resnet_conditional_trains_and_samples(conditioning, tmp_path):
    cfg = make_config(None, ["data=digits", "conditional=true", "loss=hinge", "generator.name=resnet",
                             "discriminator.name=resnet", f"discriminator.conditioning={conditioning}", "z_dim=16",
                             *TINY_COND])
    run = gancv.train(cfg, out=tmp_path / conditioning)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    if conditioning == "acgan":
        assert all("d_class" in r and "g_class" in r for r in rows)
    model = gancv.load(run, device="cpu")
    assert model.sample(3, labels=[0, 1, 2], seed=0).shape == (3, 1, 16, 16)


@pytest.mark.parametrize("name", ["cgan-digits", "cgan-mnist", "sngan-cifar10", "cgan-cifar10"])
def test_presets_resolve(name):
    cfg = make_config(name)
    assert name in PRESETS and cfg.preset == name
    assert cfg.conditional == name.startswith("cgan")


@pytest.mark.slow
def test_cgan_digits_benchmark_quick(capsys):
    assert main(["benchmark", "cgan-digits", "--quick", "--device", "cpu", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["benchmark"] == "cgan-digits" and result["quick"] is True
    assert len(result["per_class_accuracy"]) == 10 and 0 <= result["mean_accuracy"] <= 1
