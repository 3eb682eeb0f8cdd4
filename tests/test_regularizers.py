import json

import pytest
import torch
from safetensors.torch import load_file

import gancv
from gancv.cli import main
from gancv.config import make_config
from gancv.errors import GancvError
from gancv.losses import REGULARIZERS
from gancv.models import build
from gancv.training.checkpoint import checkpoint_dirs, load_state


def tiny_d():
    torch.manual_seed(0)
    return build("discriminator", {"name": "dcgan", "shape": [1, 16, 16], "width": 8})


def call(name, D, real, fake):
    if name == "gradient-penalty":
        return REGULARIZERS.get(name).fn(D, real, fake, None, generator=torch.Generator().manual_seed(0))
    if name == "r1":
        return REGULARIZERS.get(name).fn(D, real, None)
    return REGULARIZERS.get(name).fn(D(real), D(fake), torch.tensor(0.5), torch.tensor(-0.5))


@pytest.mark.parametrize("name", REGULARIZERS.names())
def test_regularizer_is_pure_finite_and_differentiable(name):
    D = tiny_d()
    real, fake = torch.rand(4, 1, 16, 16) * 2 - 1, torch.rand(4, 1, 16, 16) * 2 - 1
    a, b = call(name, D, real, fake), call(name, D, real, fake)
    assert a.dim() == 0 and torch.isfinite(a) and a >= 0
    assert torch.allclose(a, b)
    a.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in D.parameters())
    assert REGULARIZERS.get(name).config_key in make_config(None, []).keys()


def test_lecam_is_zero_inside_the_anchors():
    lecam = REGULARIZERS.get("lecam").fn
    # D(real) below the fake anchor and D(fake) above the real anchor: nothing to pull back.
    assert lecam(torch.tensor([0.0]), torch.tensor([1.0]), torch.tensor(0.5), torch.tensor(0.5)) == 0
    assert lecam(torch.tensor([2.0]), torch.tensor([0.0]), torch.tensor(0.0), torch.tensor(0.5)) == pytest.approx(2.25)


def test_r1_is_its_own_lazy_phase_scaled_by_its_interval(tiny_config, tmp_path):
    from gancv.training.loop import Trainer

    cfg = make_config(None, {**gancv.config.to_dict(tiny_config), "r1_gamma": 2.0, "r1_every": 4})
    trainer = Trainer(cfg, tmp_path / "r")
    phases = {p.name: p for p in trainer.task.phases()}
    assert list(phases) == ["D", "Dreg", "G"] and phases["Dreg"].every == 4
    out = phases["Dreg"].fn(trainer.stream.next())
    assert out["loss"].item() == pytest.approx(out["r1"].item() * 2.0 / 2 * 4, rel=1e-5)
    # D takes 5 updates per 4 steps: its Adam lr and betas are scaled by c = 4/5 (StyleGAN2), G's are not.
    c = 4 / 5
    d_group, g_group = (trainer.optimizers[k].param_groups[0] for k in ("discriminator", "generator"))
    assert d_group["lr"] == pytest.approx(cfg.lr_d * c)
    assert d_group["betas"] == pytest.approx((cfg.beta1 ** c, cfg.beta2 ** c))
    assert g_group["lr"] == pytest.approx(cfg.lr_g) and g_group["betas"] == pytest.approx((cfg.beta1, cfg.beta2))


def test_generation_lr_decays_linearly_to_zero(tiny_overrides, tmp_path):
    run = gancv.train(make_config(None, tiny_overrides + ["lr_decay_start=0.5", "log_every=1"]), out=tmp_path / "d")
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr_generator"] for r in rows if "lr_generator" in r]
    base = make_config(None, tiny_overrides).lr_g
    # Row k shows the lr of step k-1 (0-based): constant up to step 3, then falling linearly towards 0.
    assert lrs[:4] == pytest.approx([base] * 4) and lrs[4:] == pytest.approx([base * 3 / 4, base / 2])


RECIPES = {
    # WGAN-GP's critic has no BatchNorm (the penalty is per sample): an MLP critic here.
    "wgan-gp": ["loss=wasserstein", "gp_weight=10", "n_critic=2", "lr_d=1e-4", "lr_g=5e-5", "discriminator.name=mlp",
                "discriminator.hidden=[32,16]"],
    "r1-lazy": ["r1_gamma=1", "r1_every=2"],
    "lecam": ["loss=hinge", "lecam_weight=0.3"],
    "diffaugment": ["augment=color,translation,cutout"],
    "ada": ["augment=translation,cutout", "ada_target=0.6", "ada_kimg=0.05", "ada_interval=1"],
    "sn-hinge-ttur": ["loss=hinge", "discriminator.spectral_norm=true", "lr_d=4e-4", "lr_g=1e-4"],
}


@pytest.mark.slow
@pytest.mark.parametrize("recipe", list(RECIPES))
def test_recipe_trains_with_finite_losses(recipe, tiny_overrides, tmp_path):
    run = gancv.train(make_config(None, tiny_overrides + RECIPES[recipe]), out=tmp_path / recipe)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(torch.isfinite(torch.tensor([v for k, v in r.items() if k.endswith("loss")])).all() for r in rows)
    if recipe == "ada":  # p is logged and checkpointed as task state
        p = [r["aug_p"] for r in rows]
        assert all(0 <= v <= 1 for v in p)
        saved = float(load_state(checkpoint_dirs(run)[-1] / "state.pt")["task"]["ada"]["p"])
        assert 0 <= saved <= 1
    if recipe == "wgan-gp":
        assert all("gp" in r for r in rows)


@pytest.mark.slow
def test_resume_is_exact_with_task_state(tiny_overrides, tmp_path):
    extra = ["augment=color,translation", "ada_target=0.6", "ada_kimg=0.05", "lecam_weight=0.3", "r1_gamma=1",
             "r1_every=2"]
    straight = gancv.train(make_config(None, tiny_overrides + extra), out=tmp_path / "straight")
    half = gancv.train(make_config(None, tiny_overrides + extra + ["steps=3"]), out=tmp_path / "half")
    gancv.train({"steps": 6}, resume=half)
    for name in ["generator", "discriminator"]:
        wa = load_file(str(checkpoint_dirs(straight)[-1] / f"{name}.safetensors"))
        wb = load_file(str(checkpoint_dirs(half)[-1] / f"{name}.safetensors"))
        assert all(torch.equal(wa[k], wb[k]) for k in wa), name
    sa = load_state(checkpoint_dirs(straight)[-1] / "state.pt")["task"]
    sb = load_state(checkpoint_dirs(half)[-1] / "state.pt")["task"]
    assert torch.equal(sa["lecam_anchors"], sb["lecam_anchors"]) and torch.equal(sa["ada"]["p"], sb["ada"]["p"])


BAD = {
    "gp with bce": (["gp_weight=10"], "loss=bce does not use"),
    "gp with a batchnorm critic": (["loss=wasserstein", "gp_weight=10"], "discriminator.spectral_norm=true"),
    "wasserstein unconstrained": (["loss=wasserstein"], "needs a Lipschitz constraint"),
    "unknown augment": (["augment=flip"], "unknown op 'flip'"),
    "ada without augment": (["ada_target=0.6"], "augment is empty"),
    "negative weight": (["r1_gamma=-1"], "r1_gamma must be >= 0"),
    "projection without labels": (["discriminator.name=resnet", "generator.name=resnet",
                                   "discriminator.conditioning=projection"], "needs class labels"),
    "augment on points": (["data=toy2d:ring", "image_size=null", "generator.name=mlp", "discriminator.name=mlp",
                           "augment=cutout"], "transforms images"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_combination_exits_2_with_the_fix(case, tiny_overrides, tmp_path, capsys):
    extra, message = BAD[case]
    code = main(["train", "--out", str(tmp_path / "bad"), *tiny_overrides, *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and "Traceback" not in err


def test_make_config_rejects_bad_recipe():
    with pytest.raises(GancvError, match="gp_weight"):
        make_config(None, ["gp_weight=10", "loss=hinge"])
