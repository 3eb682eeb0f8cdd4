"""Discriminator rejection sampling (gancv.tasks.drs): calibration at export, the sampler, the CLI."""
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import torch

from gancv import api
from gancv.cli import main
from gancv.config import make_config
from gancv.errors import GancvError
from gancv.models import build
from gancv.tasks.drs import RejectionSampler, _f_hat, packed_logits
from gancv.training.loop import Trainer

TOY = {"steps": 30, "batch_size": 64, "device": "cpu", "progress": False, "log_every": 10, "sample_every": 30,
       "checkpoint_every": 30, "generator": {"hidden": [16, 16, 16]}, "discriminator": {"hidden": [16, 16]}}
DRS = {"enabled": True, "steps": 5, "burn_in": 300, "partners": 2}


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("drs") / "run"
    api.train(make_config("gan-toy2d-grid", {**TOY, "drs": DRS}), out=out)
    return out


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("plain") / "run"
    api.train(make_config("gan-toy2d-grid", {**TOY, "drs": {"enabled": False}}), out=out)
    return out


@pytest.mark.parametrize("pack", [1, 2, 3])
def test_packed_logits_shape_and_pack1_identity(pack):
    torch.manual_seed(0)
    D = build("discriminator", {"name": "mlp", "shape": [2 * pack], "hidden": [8], "dropout": 0.0}).eval()
    x = torch.randn(5, 2)
    partners = torch.randn(3, pack - 1, 2) if pack > 1 else None
    logits = packed_logits(D, x, None, pack, partners)
    assert logits.shape == (5,) and torch.isfinite(logits).all()
    if pack == 1:
        assert torch.equal(logits, D(x).float())
    else:  # one sample's logit does not depend on the other samples in the call
        assert torch.allclose(packed_logits(D, x[:2], None, pack, partners), logits[:2], atol=1e-6)


def test_acceptance_score_is_monotone_and_finite_at_the_max():
    f = _f_hat(torch.tensor([-5.0, -1.0, -0.1, 0.0]), 0.0)
    assert torch.isfinite(f).all() and (f.diff() > 0).all()


def test_export_carries_the_calibrated_discriminator(toy_run):
    info = json.loads((toy_run / "model" / "config.json").read_text())
    assert (toy_run / "model" / "discriminator.safetensors").is_file()
    assert info["drs"]["pack"] == 2 and info["drs"]["discriminator"]["shape"] == [4]
    model = api.load(toy_run, device="cpu")
    assert model.has_drs
    # Calibration fine-tuned a copy: the exported D differs from the training D of the checkpoint.
    from safetensors.torch import load_file

    ckpt = sorted((toy_run / "checkpoints").iterdir())[-1]
    trained, exported = load_file(ckpt / "discriminator.safetensors"), load_file(toy_run / "model" / "discriminator.safetensors")
    assert trained.keys() == exported.keys() and any(not torch.equal(trained[k], exported[k]) for k in trained)


def test_drs_sampling_is_seeded_and_the_default(toy_run):
    model = api.load(toy_run, device="cpu")
    a, b = model.sample(50, seed=3), model.sample(50, seed=3)
    assert a.shape == (50, 2) and torch.equal(a, b)
    assert torch.equal(a, model.sample(50, seed=3, drs=True))
    assert not torch.equal(a, model.sample(50, seed=3, drs=False))  # plain sampling is still there
    points, stats = model.rejection_sample(50, None, seed=3)
    assert torch.equal(points, a) and 0.0 < stats["acceptance"] <= 1.0 and stats["drawn"] >= 50


def test_drs_on_a_model_without_discriminator_is_a_user_error(plain_run, capsys):
    model = api.load(plain_run, device="cpu")
    assert not model.has_drs
    with pytest.raises(GancvError, match="drs.enabled=true"):
        model.sample(4, drs=True)
    assert model.sample(4, seed=1, drs=False).shape == (4, 2)
    code = main(["sample", str(plain_run), "-n", "4", "--out", str(plain_run / "s.npz"), "--drs", "--device", "cpu"])
    assert code == 2
    assert "drs.enabled=true" in capsys.readouterr().err


def test_cli_sample_with_and_without_drs(toy_run, tmp_path):
    import numpy as np

    for flag in ("--drs", "--no-drs"):
        out = tmp_path / f"s{flag}.npz"
        assert main(["sample", str(toy_run), "-n", "8", "--seed", "2", "--out", str(out), flag, "--device", "cpu"]) == 0
        assert np.load(out)["samples"].shape == (8, 2)


def test_drs_is_for_generation_tasks_only(tmp_path):
    cfg = make_config("pix2pix-photos-gray", {"drs": {"enabled": True}, "device": "cpu"})
    with pytest.raises(GancvError, match="task=generation"):
        Trainer(cfg, tmp_path / "run")


def test_sampler_rejects_bad_settings_and_gives_up_when_nothing_is_accepted():
    D = build("discriminator", {"name": "mlp", "shape": [2], "hidden": [4], "dropout": 0.0}).eval()
    noise = lambda n, g: torch.randn(n, 2, generator=g)  # noqa: E731
    with pytest.raises(GancvError, match="percentile"):
        RejectionSampler(D, {"percentile": 120, "burn_in": 10}, lambda z, y: z, noise)
    sampler = RejectionSampler(D, {"percentile": 100, "burn_in": 10}, lambda z, y: z, noise)
    # A D whose logits never come near the burn-in maximum again (every later sample far below it).
    sampler.logits = lambda x, labels, partners: torch.full((x.shape[0],), -1e4) if x.shape[0] != 10 else torch.zeros(10)
    with pytest.raises(GancvError, match="--no-drs"):
        sampler.sample(5, None, torch.Generator().manual_seed(0), lambda n: None)


@pytest.mark.slow
def test_conditional_drs_keeps_the_requested_class(tmp_path):
    cfg = make_config("cgan-digits", {"steps": 4, "batch_size": 16, "device": "cpu", "progress": False,
                                      "checkpoint_every": 4, "sample_every": 4, "ema_kimg": 0.0,
                                      "generator": {"width": 8}, "discriminator": {"width": 8},
                                      "drs": {**DRS, "burn_in": 50}})
    api.train(cfg, out=tmp_path / "run")
    model = api.load(tmp_path / "run", device="cpu")
    assert model.has_drs and model.conditional
    images = model.sample(6, labels=[1, 3, 1, 3, 0, 1], seed=5)
    assert images.shape[0] == 6 and images.dtype == torch.uint8
    assert torch.equal(images, model.sample(6, labels=[1, 3, 1, 3, 0, 1], seed=5))


@pytest.mark.parametrize("key,value", [("steps", 0), ("lr", 0.0), ("lr", -1e-3), ("percentile", -1.0),
                                       ("percentile", 100.5), ("burn_in", 0), ("partners", 0)])
def test_bad_drs_settings_stop_before_training(key, value, tmp_path, capsys):
    with pytest.raises(GancvError, match=f"drs.{key} must be"):
        make_config("gan-toy2d-grid", {**TOY, "drs": {**DRS, key: value}})
    code = main(["train", "--preset", "gan-toy2d-grid", f"drs.{key}={value}", "--out", str(tmp_path / "r"),
                 "--device", "cpu"])
    assert code == 2 and f"drs.{key} must be" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # nothing was trained or written


@given(percentile=st.floats(0.0, 100.0), burn_in=st.integers(1, 10**6), partners=st.integers(1, 512))
@settings(max_examples=25, deadline=None)
def test_valid_drs_settings_are_accepted(percentile, burn_in, partners):
    cfg = make_config("gan-toy2d-grid", {"drs": {"percentile": percentile, "burn_in": burn_in, "partners": partners}})
    assert cfg.drs.percentile == percentile and cfg.drs.burn_in == burn_in
