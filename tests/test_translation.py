"""pix2pix and CycleGAN end to end on tiny folders in the public layouts: train from the CLI,
translate any size, resume exactly, and the bad-input exits."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file

import gancv
from gancv.cli import main
from gancv.config import PRESETS, make_config
from gancv.errors import GancvError
from gancv.tasks.translation import ImagePool
from gancv.training.checkpoint import checkpoint_dirs
from gancv.training.loop import linear_decay

NETS = ["image_size=16", "batch_size=2", "steps=4", "log_every=2", "sample_every=2", "checkpoint_every=2",
        "progress=false", "device=cpu", "generator.name=unet", "generator.num_downs=3", "generator.width=4",
        "discriminator.name=nlayer", "discriminator.n_layers=1", "discriminator.width=4"]


def rgb(h, w, seed):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def facades(tmp_path_factory):
    """pix2pix's released layout: A|B side-by-side jpgs in train/ and val/."""
    root = tmp_path_factory.mktemp("facades")
    for split, n in (("train", 6), ("val", 2)):
        (root / split).mkdir()
        for i in range(n):
            rgb(20, 40, i).save(root / split / f"{i}.jpg")
    return root


@pytest.fixture(scope="module")
def horse2zebra(tmp_path_factory):
    root = tmp_path_factory.mktemp("horse2zebra")
    for side, n in (("trainA", 5), ("trainB", 7), ("testA", 2), ("testB", 2)):
        (root / side).mkdir()
        for i in range(n):
            img = rgb(20, 24, i + len(side) * 10)
            (img.convert("L") if side == "trainB" and i == 0 else img).save(root / side / f"{i}.jpg")
    return root


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def pix2pix_run(facades, tmp_path_factory):
    out = tmp_path_factory.mktemp("p2p") / "run"
    code = main(["train", "--preset", "pix2pix-facades", "--out", str(out), f"data=paired:{facades}", *NETS])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def cyclegan_run(horse2zebra, tmp_path_factory):
    out = tmp_path_factory.mktemp("cyc") / "run"
    code = main(["train", "--preset", "cyclegan-horse2zebra", "--out", str(out), f"data=unpaired:{horse2zebra}",
                 "pool_size=3", *NETS])
    assert code == 0
    return out


def test_presets_exist_and_resolve():
    names = ["pix2pix-facades", "pix2pix-maps", "cyclegan-horse2zebra", "cyclegan-monet2photo"]
    names += [f"{m}-photos-{s}" for m in ("pix2pix", "cyclegan") for s in ("cartoon", "gray", "colorize")]
    for name in names:
        assert name in PRESETS
        cfg = make_config(name)
        assert cfg.task in ("pix2pix", "cyclegan")
    assert make_config("pix2pix-facades").direction == "b2a"  # labels -> photos, the paper's direction
    cyc = make_config("cyclegan-horse2zebra")
    assert (cyc.lambda_cycle, cyc.lambda_identity, cyc.pool_size, cyc.lr_decay_start) == (10.0, 0.5, 50, 0.5)
    assert cyc.generator.name == "resnet-9blocks" and cyc.loss == "lsgan"
    assert make_config("pix2pix-maps").lambda_l1 == 100.0


def test_offline_presets_share_one_generator_per_style():
    # pix2pix and CycleGAN train the same U-Net per style (the benchmark isolates pairing);
    # colorize keeps the transposed conv, where resize measured worse
    expected = {"cartoon": "resize", "gray": "resize", "colorize": "transpose"}
    for style, upsample in expected.items():
        p2p, cyc = (make_config(f"{m}-photos-{style}") for m in ("pix2pix", "cyclegan"))
        assert dict(p2p.generator) == dict(cyc.generator)
        assert p2p.generator.upsample == upsample


@pytest.mark.slow
def test_pix2pix_run_layout_and_translate_any_size(pix2pix_run, tmp_path, capsys):
    info = json.loads((pix2pix_run / "model" / "config.json").read_text())
    assert info["task"] == "pix2pix" and list(info["generators"]) == ["b2a"]
    assert {p.name for p in checkpoint_dirs(pix2pix_run)[-1].iterdir()} == {
        "generator.safetensors", "discriminator.safetensors", "state.pt"}
    rows = [json.loads(x) for x in (pix2pix_run / "metrics.jsonl").read_text().splitlines()]
    assert all({"d_loss", "g_loss", "l1_loss"} <= set(r) for r in rows)
    assert rows[-1]["lr_generator"] < rows[0]["lr_generator"]  # linear decay over the second half
    rgb(37, 53, 3).convert("L").save(tmp_path / "odd.png")  # gray, odd size, into an RGB model
    code, _, err = cli(capsys, "translate", pix2pix_run, tmp_path / "odd.png", "--out", tmp_path / "o.png")
    assert code == 0, err
    out = Image.open(tmp_path / "o.png")
    assert out.size == (53, 37) and out.mode == "RGB"
    code, _, err = cli(capsys, "translate", pix2pix_run, tmp_path / "odd.png", "--out", tmp_path / "x.png",
                       "--direction", "a2b")
    assert code == 2 and "b2a" in err


@pytest.mark.slow
def test_translate_folders_and_api(pix2pix_run, facades, tmp_path, capsys):
    (facades / "val" / "broken.png").write_bytes(b"")  # one bad file does not stop the batch
    try:
        code, _, err = cli(capsys, "translate", pix2pix_run, facades / "val", "--out", tmp_path / "outdir")
    finally:
        (facades / "val" / "broken.png").unlink()
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "outdir").iterdir()) == ["0.png", "1.png"]
    assert "skipped 1" in err
    model = gancv.load(pix2pix_run, device="cpu")
    batch = torch.randint(0, 256, (2, 3, 24, 40), dtype=torch.uint8)
    out = model.translate(batch)
    assert out.shape == batch.shape and out.dtype == torch.uint8
    assert [o.shape for o in model.translate([batch[0], np.zeros((9, 11, 3), np.uint8)])] == [(3, 24, 40), (3, 9, 11)]
    # tiles blend seamlessly: a tiled run matches the whole-image run closely
    big = torch.randint(0, 256, (3, 96, 96), dtype=torch.uint8)
    whole, tiled = model.translate(big, tile=512), model.translate(big, tile=80, overlap=16)
    assert (whole.float() - tiled.float()).abs().mean() < 6


@pytest.mark.slow
def test_cyclegan_trains_both_directions(cyclegan_run, tmp_path, capsys):
    ckpt = checkpoint_dirs(cyclegan_run)[-1]
    assert {p.name for p in ckpt.iterdir()} == {"generator_ab.safetensors", "generator_ba.safetensors",
                                                "discriminator_a.safetensors", "discriminator_b.safetensors", "state.pt"}
    rows = [json.loads(x) for x in (cyclegan_run / "metrics.jsonl").read_text().splitlines()]
    assert all({"g_loss", "cycle_loss", "identity_loss", "d_a", "d_b"} <= set(r) for r in rows)
    model = gancv.load(cyclegan_run, device="cpu")
    assert model.directions == ["a2b", "b2a"]
    rgb(30, 20, 1).save(tmp_path / "in.png")
    for direction in ("a2b", "b2a"):
        code, _, err = cli(capsys, "translate", cyclegan_run, tmp_path / "in.png", "--out", tmp_path / f"{direction}.png",
                           "--direction", direction)
        assert code == 0, err
    assert not np.array_equal(np.array(Image.open(tmp_path / "a2b.png")), np.array(Image.open(tmp_path / "b2a.png")))


@pytest.mark.slow
def test_cyclegan_resume_is_exact(horse2zebra, tmp_path):
    # with an EMA of both generators: their averages are checkpointed, resumed and exported
    overrides = ["task=cyclegan", f"data=unpaired:{horse2zebra}", "loss=lsgan", "pool_size=2", "lr_decay_start=0.5",
                 "flip=true", "ema_kimg=0.004", *NETS]
    full = gancv.train(make_config(None, overrides), out=tmp_path / "full")
    part = gancv.train(make_config(None, overrides), out=tmp_path / "part")
    shutil.rmtree(checkpoint_dirs(part)[-1])  # as if killed after step 2
    gancv.train({}, resume=part)
    last = checkpoint_dirs(full)[-1]
    for name in ("generator_ab", "generator_ba", "discriminator_b", "generator_ab_ema", "generator_ba_ema"):
        a = load_file(str(last / f"{name}.safetensors"))
        b = load_file(str(checkpoint_dirs(part)[-1] / f"{name}.safetensors"))
        assert all(torch.equal(a[k], b[k]) for k in a), name
    exported = load_file(str(full / "model" / "generator_b2a.safetensors"))
    raw, ema = (load_file(str(last / f"generator_ba{s}.safetensors")) for s in ("", "_ema"))
    assert all(torch.equal(exported[k], ema[k]) for k in ema) and not all(torch.equal(raw[k], ema[k]) for k in ema)


@pytest.mark.slow
def test_l1_only_ablation_trains_no_discriminator(facades, tmp_path):
    cfg = make_config("pix2pix-facades", [f"data=paired:{facades}", "lambda_gan=0", *NETS])
    run = gancv.train(cfg, out=tmp_path / "l1")
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert "l1_loss" in rows[-1] and "d_loss" not in rows[-1]


@pytest.mark.slow
def test_wrong_model_for_the_command(pix2pix_run, trained_run, tmp_path, capsys):
    code, _, err = cli(capsys, "sample", pix2pix_run, "-n", 2, "--out", tmp_path / "g.png")
    assert code == 2 and "pix2pix" in err and "Traceback" not in err
    rgb(16, 16, 0).save(tmp_path / "in.png")
    code, _, err = cli(capsys, "translate", trained_run, tmp_path / "in.png", "--out", tmp_path / "o.png")
    assert code == 2 and "generation" in err and "Traceback" not in err
    code, _, err = cli(capsys, "translate", pix2pix_run, tmp_path / "missing.png", "--out", tmp_path / "o.png")
    assert code == 2 and "does not exist" in err


@pytest.mark.slow
def test_wrong_data_for_the_task(horse2zebra, facades, tmp_path, capsys):
    code, _, err = cli(capsys, "train", "--preset", "pix2pix-facades", f"data=unpaired:{horse2zebra}", *NETS,
                       "--out", tmp_path / "a")
    assert code == 2 and "paired" in err
    code, _, err = cli(capsys, "train", "--preset", "cyclegan-horse2zebra", f"data=paired:{facades}", *NETS,
                       "--out", tmp_path / "b")
    assert code == 2 and "unpaired" in err
    (horse2zebra / "trainB_empty").mkdir(exist_ok=True)
    empty = tmp_path / "empty_side"
    shutil.copytree(horse2zebra, empty)
    for f in (empty / "trainA").iterdir():
        f.unlink()
    code, _, err = cli(capsys, "train", "--preset", "cyclegan-horse2zebra", f"data=unpaired:{empty}", *NETS,
                       "--out", tmp_path / "c")
    assert code == 2 and "trainA" in err
    code, _, err = cli(capsys, "train", "--preset", "pix2pix-facades", f"data=paired:{facades}",
                       *[o for o in NETS if not o.startswith("generator.num_downs")], "generator.num_downs=5",
                       "--out", tmp_path / "d")
    assert code == 2 and "multiple of 32" in err


def test_image_pool_mixes_history():
    rng = torch.Generator().manual_seed(0)
    pool = ImagePool(4, rng)
    first = torch.zeros(4, 1, 2, 2)
    assert torch.equal(pool.query(first), first)  # filling: the new images come back
    out = pool.query(torch.ones(64, 1, 2, 2))
    old = int((out == 0).flatten(1).all(1).sum())
    assert 0 < old <= 4  # some stored fakes were handed out (each at most once)
    state = pool.state_dict()
    again = ImagePool(4, torch.Generator().manual_seed(0))
    again.load_state_dict(state)
    assert torch.equal(again.images, pool.images)
    assert torch.equal(ImagePool(0, rng).query(first), first)


def test_linear_decay_schedule():
    assert linear_decay(0, 100, None) == 1.0
    assert [linear_decay(s, 100, 0.5) for s in (0, 50)] == [1.0, 1.0]
    assert linear_decay(99, 100, 0.5) < 0.05 and 0.45 < linear_decay(75, 100, 0.5) < 0.55


def test_cyclegan_per_domain_cycle_weights(horse2zebra):
    # lambda_cycle_a / lambda_cycle_b (the reference's lambda_A / lambda_B) weight each domain's
    # cycle and identity terms; unset, both are lambda_cycle.
    from gancv.data import load_data
    from gancv.tasks.translation import CycleGANTask

    def g_loss(*extra):
        cfg = make_config(None, ["task=cyclegan", f"data=unpaired:{horse2zebra}", "loss=lsgan", "lambda_gan=0",
                                 "pool_size=0", *NETS, *extra])
        bundle = load_data(cfg.data, image_size=cfg.image_size, channels=cfg.channels, max_items=4, seed=0)
        torch.manual_seed(0)
        task = CycleGANTask(cfg, bundle, torch.device("cpu"), torch.Generator().manual_seed(0))
        task.G_ab.eval(), task.G_ba.eval()
        a = task.fixed_a[:2]
        b = task.fixed_b[:2]
        task._reals = lambda batch: (a, b)  # the same images for every setting
        return task.g_step((a,))["loss"].item(), task, a, b

    both, *_ = g_loss("lambda_cycle=10", "lambda_identity=0.5")
    same, *_ = g_loss("lambda_cycle=10", "lambda_identity=0.5", "lambda_cycle_a=10", "lambda_cycle_b=10")
    assert same == pytest.approx(both, rel=1e-6)
    only_a, task, a, b = g_loss("lambda_cycle_a=3", "lambda_cycle_b=0", "lambda_identity=0.5")
    with torch.no_grad():
        expect = 3 * (F.l1_loss(task.G_ba(task.G_ab(a)), a) + 0.5 * F.l1_loss(task.G_ba(a), a))
    assert only_a == pytest.approx(expect.item(), rel=1e-5) and only_a < both
    with pytest.raises(GancvError, match="lambda_cycle_b"):
        make_config(None, ["task=cyclegan", "lambda_cycle_b=-1"])


def test_cyclegan_cycle_jitter_offsets_each_translation_before_the_cycle(horse2zebra):
    # cycle_jitter adds one random offset per image and channel to each translation before the other
    # generator maps it back (against a faint tint that carries the input's colour); 0 = off.
    from gancv.data import load_data
    from gancv.tasks.translation import CycleGANTask

    cfg = make_config(None, ["task=cyclegan", f"data=unpaired:{horse2zebra}", "loss=lsgan", "pool_size=0",
                             "cycle_jitter=0.1", *NETS])
    bundle = load_data(cfg.data, image_size=cfg.image_size, channels=cfg.channels, max_items=4, seed=0)
    task = CycleGANTask(cfg, bundle, torch.device("cpu"), torch.Generator().manual_seed(0))
    x = torch.zeros(3, 3, 8, 8)
    jittered = task._jitter(x)
    assert torch.equal(jittered, jittered[..., :1, :1].expand_as(jittered))  # constant over each image
    assert 0.03 < float(jittered.std()) < 0.3 and not torch.equal(jittered[0], jittered[1])
    task.cfg = make_config(None, ["task=cyclegan", *NETS])
    assert task.cfg.cycle_jitter == 0 and torch.equal(task._jitter(x), x)
    with pytest.raises(GancvError, match="cycle_jitter"):
        make_config(None, ["task=cyclegan", "cycle_jitter=-0.1"])


def test_cyclegan_palette_loss_pulls_each_value_to_the_nearest_real_value(horse2zebra):
    # lambda_palette adds the L1 distance from each translated value to the nearest value the same
    # channel takes in the real batch of that domain: 0 for values in that palette, 0 = off.
    from gancv.data import load_data
    from gancv.losses import palette_l1
    from gancv.tasks.translation import CycleGANTask

    levels = torch.tensor([-1.0, -0.5, 0.5]).view(1, 1, 1, 3).expand(2, 3, 1, 3)
    assert float(palette_l1(levels.flip(-1), levels)) == 0
    assert float(palette_l1(torch.full((1, 3, 2, 2), 0.4), levels)) == pytest.approx(0.1)
    assert float(palette_l1(torch.full((1, 3, 2, 2), -0.8), levels)) == pytest.approx(0.2)

    cfg = make_config(None, ["task=cyclegan", f"data=unpaired:{horse2zebra}", "loss=lsgan", "pool_size=0", *NETS])
    bundle = load_data(cfg.data, image_size=cfg.image_size, channels=cfg.channels, max_items=4, seed=0)
    task = CycleGANTask(cfg, bundle, torch.device("cpu"), torch.Generator().manual_seed(0))
    a, b = task.fixed_a[:2], task.fixed_b[:2]
    task._reals = lambda batch: (a, b)
    off = task.g_step((a,))
    assert cfg.lambda_palette == 0 and "palette_loss" not in off
    task.cfg = make_config(None, ["task=cyclegan", "loss=lsgan", "pool_size=0", "lambda_palette=2", *NETS])
    on = task.g_step((a,))
    with torch.no_grad():
        expect = palette_l1(task.G_ab(a), b) + palette_l1(task.G_ba(b), a)
    assert float(on["palette_loss"]) == pytest.approx(float(expect), rel=1e-5)
    assert on["loss"].item() == pytest.approx(off["loss"].item() + 2 * float(expect), rel=1e-5)
    with pytest.raises(GancvError, match="lambda_palette"):
        make_config(None, ["task=cyclegan", "lambda_palette=-1"])


@pytest.mark.parametrize("seed", range(3))
def test_palette_l1_matches_a_brute_force_nearest_value(seed):
    # The loss searches the sorted real values with their repeats kept (no data-dependent `unique`,
    # so no host sync); the nearest value, and so the loss, must be what a brute force gives.
    from gancv.losses import palette_l1

    g = torch.Generator().manual_seed(seed)
    real = torch.randint(0, 5, (3, 2, 4, 4), generator=g).float() / 2 - 1  # 5 levels, many repeats
    fake = torch.rand(2, 2, 3, 3, generator=g) * 2.4 - 1.2
    brute = torch.stack([(f.flatten()[:, None] - r.unique()[None]).abs().min(1).values
                         for f, r in zip(fake.transpose(0, 1), real.transpose(0, 1))]).mean()
    assert float(palette_l1(fake, real)) == pytest.approx(float(brute), abs=1e-6)
