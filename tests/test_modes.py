"""Mode-collapse metrics on constructed point sets with known answers, and PacGAN packing."""
import math

import numpy as np
import pytest
import torch

from gancv.config import make_config
from gancv.data import toy2d_modes
from gancv.errors import GancvError
from gancv.metrics.modes import reverse_kl, score_modes, score_stacked, stacked_modes, summarise, uniform_kl_floor
from gancv.models import DISCRIMINATORS, build
from gancv.tasks.generation import pack_samples, packed_shape


# ---- reverse KL ---------------------------------------------------------------------------------
def test_reverse_kl_known_values():
    assert reverse_kl([5, 5, 5, 5]) == pytest.approx(0.0, abs=1e-12)
    assert reverse_kl([7, 0, 0, 0, 0, 0, 0, 0]) == pytest.approx(math.log(8))  # full collapse onto 1 of 8
    assert reverse_kl([3, 3, 0, 0]) == pytest.approx(math.log(2))  # half the modes, evenly
    # p = (3/4, 1/4) vs uniform over 2: 3/4 log(3/2) + 1/4 log(1/2)
    assert reverse_kl([3, 1]) == pytest.approx(0.75 * math.log(1.5) + 0.25 * math.log(0.5))
    assert reverse_kl([0, 0, 0]) is None


def test_reverse_kl_rejects_bad_histograms():
    with pytest.raises(ValueError):
        reverse_kl([])
    with pytest.raises(ValueError):
        reverse_kl([1, -1])


# ---- toy 2-D scoring ----------------------------------------------------------------------------
def test_points_on_every_centre_score_perfectly():
    centres, std = toy2d_modes("grid")
    points = centres.repeat(4, 1)  # 100 points, 4 exactly on each of the 25 centres
    s = score_modes(points, centres, std)
    assert (s.n, s.modes, s.covered, s.high_quality) == (100, 25, 25, 1.0)
    assert s.reverse_kl == pytest.approx(0.0, abs=1e-12)
    assert s.counts == [4] * 25


def test_quality_radius_is_three_std():
    centres, std = toy2d_modes("ring")
    # Along the outward radius of mode 0 (1, 0): 2.9 std away is high quality, 3.1 std is not.
    points = torch.tensor([[1 + 2.9 * std, 0.0], [1 + 3.1 * std, 0.0], [0.0, 0.0], [float("nan"), 0.0]])
    s = score_modes(points, centres, std)
    assert s.high_quality == pytest.approx(0.25)
    assert s.covered == 1 and s.counts[0] == 1
    assert s.reverse_kl == pytest.approx(math.log(8))


def test_half_the_modes_with_junk_samples():
    centres, std = toy2d_modes("ring")
    rng = np.random.default_rng(0)
    good = centres[:4].repeat(50, 1) + torch.from_numpy(rng.normal(0, std, (200, 2)).clip(-std, std)).float()
    junk = torch.full((100, 2), 5.0)  # far from every mode
    s = score_modes(torch.cat([good, junk]), centres, std)
    assert s.covered == 4
    assert s.high_quality == pytest.approx(200 / 300)
    assert s.reverse_kl == pytest.approx(math.log(2))  # uniform over half the modes


def test_real_toy_data_scores_near_perfect():
    from gancv.data import load_data

    for name, min_hq in (("ring", 0.99), ("grid", 0.99)):
        bundle = load_data(f"toy2d:{name}", max_items=2500, seed=3)
        centres, std = toy2d_modes(name)
        s = score_modes(bundle.x, centres, std)
        # 3 std in 2-D keeps 1 - exp(-4.5) = 98.9% of a Gaussian's mass.
        assert s.covered == centres.shape[0] and s.high_quality >= 0.98
        assert s.reverse_kl < 0.02


# ---- stacked digits -----------------------------------------------------------------------------
def test_stacked_modes_and_score():
    assert stacked_modes(np.array([[1, 2, 3], [0, 0, 9]])).tolist() == [123, 9]
    every = np.stack([np.arange(1000) // 100, np.arange(1000) // 10 % 10, np.arange(1000) % 10], axis=1)
    s = score_stacked(np.concatenate([every, every]))
    assert (s.n, s.covered) == (2000, 1000) and s.reverse_kl == pytest.approx(0.0, abs=1e-12)
    collapsed = score_stacked(np.tile([[4, 4, 4]], (50, 1)))
    assert collapsed.covered == 1 and collapsed.reverse_kl == pytest.approx(math.log(1000))
    with pytest.raises(ValueError):
        stacked_modes(np.array([[1, 2, 10]]))


def test_summary_and_floor():
    assert summarise([1.0, 3.0]) == {"mean": 2.0, "std": 1.0, "undefined": 0}
    assert summarise([None, 2.0])["undefined"] == 1
    assert summarise([None]) == {"mean": None, "std": None, "undefined": 1}
    assert uniform_kl_floor(25_600, 1000) == pytest.approx(999 / 51_200)


# ---- PacGAN packing -----------------------------------------------------------------------------
def test_pack_samples_concatenates_consecutive_samples():
    points = torch.arange(12.0).view(6, 2)
    packed = pack_samples(points, 3)
    assert packed.shape == (2, 6)
    assert packed[1].tolist() == [6.0, 7.0, 8.0, 9.0, 10.0, 11.0]
    images = torch.randn(4, 3, 8, 8)
    packed = pack_samples(images, 2)
    assert packed.shape == (2, 6, 8, 8)
    assert torch.equal(packed[1, 3:], images[3])  # channels of sample 3 follow those of sample 2
    assert pack_samples(images, 1) is images
    with pytest.raises(GancvError, match="packs of 3"):
        pack_samples(images, 3)


def _shape_discriminators() -> list[str]:
    # Packing is a generation-task option: it applies to the discriminators built from a data shape
    # (restoration/translation discriminators take channels, not a shape, and never see packs).
    import inspect

    return [n for n in DISCRIMINATORS.names() if "shape" in inspect.signature(DISCRIMINATORS.get(n).__init__).parameters]


@pytest.mark.parametrize("name", _shape_discriminators())
@pytest.mark.parametrize("pack", [2, 4])
def test_every_discriminator_judges_packs(name, pack):
    shape = [2] if name == "mlp" else [3, 16, 16]
    small = {"mlp": {"hidden": [16]}, "dcgan": {"width": 8}}.get(name, {})
    D = build("discriminator", {"name": name, "shape": packed_shape(shape, pack), **small})
    logits = D(pack_samples(torch.randn(8, *shape), pack))
    assert logits.shape == (8 // pack,)
    logits.sum().backward()


def test_pack_config_errors():
    with pytest.raises(GancvError, match="not divisible by pack=3"):
        make_config("gan-toy2d-ring", ["batch_size=64", "pack=3"])
    with pytest.raises(GancvError, match="pack must be >= 1"):
        make_config(None, ["pack=0"])


def test_pack_with_conditional_is_refused(tiny_overrides, tmp_path):
    import gancv

    with pytest.raises(GancvError, match="pack=2"):
        gancv.train(make_config(None, tiny_overrides + ["conditional=true", "pack=2"]), out=tmp_path / "r")


@pytest.mark.parametrize("extra", [
    ["pack=2"],  # conv D on images: channels concatenated
    ["data=toy2d:ring", "image_size=null", "channels=null", "z_dim=2", "generator.name=mlp", "generator.hidden=[16]",
     "discriminator.name=mlp", "discriminator.hidden=[16]", "pack=4"],  # MLP D on points
])
def test_packed_training_runs_and_exports(tiny_overrides, tmp_path, extra):
    import gancv

    run = gancv.train(make_config(None, tiny_overrides + extra), out=tmp_path / "r")
    cfg = make_config(None, tiny_overrides + extra)
    model = gancv.load(run, device="cpu")
    samples = model.sample(8, seed=0)
    assert samples.shape[0] == 8
    from safetensors.torch import load_file

    d = load_file(str(sorted((run / "checkpoints").iterdir())[-1] / "discriminator.safetensors"))
    first = d[sorted(k for k in d if k.endswith("weight"))[0]]
    in_features = first.shape[1]
    per_sample = 1 if "data=toy2d:ring" not in extra else 2
    assert in_features == per_sample * cfg.pack
