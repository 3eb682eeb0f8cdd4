"""StyleGAN: the networks' W-space contract, training phases, mixing, truncation, directions,
inversion, and the CLI's answers to bad input."""
import numpy as np
import pytest
import torch
from PIL import Image

import gancv
from gancv.cli import main
from gancv.config import make_config
from gancv.data import load_data
from gancv.directions import sefa
from gancv.errors import GancvError
from gancv.inversion import load_target, project, psnr
from gancv.models import build
from gancv.models.stylegan import minibatch_stddev

TINY_G = {"name": "stylegan", "channel_base": 64, "channel_max": 16, "w_dim": 16, "mapping_layers": 2}
TINY_D = {"name": "stylegan", "channel_base": 64, "channel_max": 16, "cmap_dim": 8}
TINY_RUN = [
    "task=stylegan", "data=digits", "image_size=16", "channels=1", "batch_size=8", "steps=4", "z_dim=8",
    "generator.name=stylegan", "generator.channel_base=64", "generator.channel_max=16", "generator.w_dim=16",
    "generator.mapping_layers=2", "discriminator.name=stylegan", "discriminator.channel_base=64",
    "discriminator.channel_max=16", "r1_gamma=1", "r1_every=2", "pl_weight=2", "pl_every=2", "style_mixing=0.9",
    "ema_kimg=0.1", "lr_g=0.0025", "lr_d=0.0025", "beta1=0", "beta2=0.99",
    "log_every=2", "sample_every=2", "checkpoint_every=2", "progress=false", "device=cpu",
]


def tiny_g(shape=(1, 16, 16), **kw):
    return build("generator", {**TINY_G, "shape": list(shape), "z_dim": 8, **kw})


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def sg_run(tmp_path_factory):
    """A tiny class-conditional StyleGAN trained with every regulariser on."""
    out = tmp_path_factory.mktemp("sg") / "run"
    gancv.train(make_config(None, TINY_RUN + ["conditional=true"]), out=out)
    return out


@pytest.fixture
def face_png(tmp_path):
    path = tmp_path / "face.png"
    Image.fromarray(load_data("faces:heldout").x[0, 0].numpy(), mode="L").save(path)
    return path


# ---- networks -----------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [24, 48, 100, 4])
def test_resolution_must_be_a_power_of_two(size):
    with pytest.raises(GancvError, match="power of two"):
        build("generator", {**TINY_G, "shape": [1, size, size]})
    with pytest.raises(GancvError, match="power of two"):
        build("discriminator", {**TINY_D, "shape": [1, size, size]})


@pytest.mark.parametrize("size,num_ws", [(8, 4), (32, 8), (256, 14)])
def test_num_ws_follows_resolution(size, num_ws):
    G = build("generator", {**TINY_G, "channel_max": 4, "shape": [3, size, size], "z_dim": 4})
    assert G.num_ws == num_ws


@pytest.mark.parametrize("architecture", ["skip", "resnet"])
def test_mapping_synthesis_split_equals_forward(architecture):
    torch.manual_seed(0)
    G = tiny_g(architecture=architecture).eval()
    z = torch.randn(3, 8)
    ws = G.map(z)
    assert ws.shape == (3, G.num_ws, 16) and torch.equal(ws[:, 0], ws[:, -1])
    torch.manual_seed(1)
    a = G.synthesis(ws)
    torch.manual_seed(1)
    assert torch.equal(a, G(z))
    # const noise: the same latent gives the same image; random noise changes it once it is switched on
    with torch.no_grad():
        for m in G.modules():
            if hasattr(m, "noise_strength"):
                m.noise_strength.fill_(0.5)
    assert torch.equal(G.synthesis(ws, "const"), G.synthesis(ws, "const"))
    assert not torch.equal(G.synthesis(ws, "random"), G.synthesis(ws, "random"))


def test_w_avg_is_tracked_in_training_and_truncation_pulls_to_it():
    torch.manual_seed(0)
    G = tiny_g()
    assert torch.count_nonzero(G.w_avg) == 0
    G.map(torch.randn(16, 8))
    assert torch.count_nonzero(G.w_avg) > 0
    G.eval()
    before = G.w_avg.clone()
    z = torch.randn(5, 8)
    w_full, w_zero = G.map(z), G.map(z, truncation_psi=0.0)
    assert torch.equal(G.w_avg, before)  # eval does not move the average
    assert torch.allclose(w_zero, before.expand_as(w_zero))
    half = G.map(z, truncation_psi=0.5)
    assert torch.allclose(half, before + 0.5 * (w_full - before), atol=1e-6)
    cut = G.map(z, truncation_psi=0.0, truncation_cutoff=2)
    assert torch.allclose(cut[:, :2], w_zero[:, :2]) and torch.allclose(cut[:, 2:], w_full[:, 2:])


def test_demodulation_normalises_the_conv_output():
    from gancv.models.stylegan import ModulatedConv

    torch.manual_seed(0)
    conv = ModulatedConv(32, 32, 3, w_dim=8)
    x = torch.randn(4, 32, 16, 16)
    y = conv(x, torch.randn(4, 8) * 3)  # large styles: without demodulation the output scale explodes
    assert 0.6 < float(y.detach()[:, :, 2:-2, 2:-2].std()) < 1.4


def test_minibatch_stddev_sees_a_collapsed_batch():
    x = torch.randn(8, 4, 4, 4)
    same = x[:1].expand(8, -1, -1, -1)
    assert minibatch_stddev(x, 4).shape == (8, 5, 4, 4)
    assert float(minibatch_stddev(same, 4)[:, -1].abs().max()) < 1e-3 < float(minibatch_stddev(x, 4)[:, -1].mean())
    assert minibatch_stddev(torch.randn(6, 4, 4, 4), 4).shape == (6, 5, 4, 4)  # 6 is not divisible by 4


def test_gradient_checkpointing_gives_the_same_gradients():
    grads = []
    for flag in (False, True):
        torch.manual_seed(0)
        G = tiny_g(checkpointing=flag)
        D = build("discriminator", {**TINY_D, "shape": [1, 16, 16], "checkpointing": flag})
        torch.manual_seed(1)
        D(G(torch.randn(4, 8))).sum().backward()
        grads.append([p.grad.clone() for p in list(G.parameters()) + list(D.parameters())])
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-5)


def test_sefa_directions_are_orthonormal_and_sorted():
    G = tiny_g()
    dirs, eig = sefa(G)
    assert dirs.shape == (16, 16)
    assert torch.allclose(dirs @ dirs.t(), torch.eye(16), atol=1e-5)
    assert torch.all(eig[:-1] >= eig[1:])
    with pytest.raises(GancvError, match="modulation layers"):
        sefa(build("generator", {"name": "dcgan", "shape": [1, 16, 16], "width": 8}))


def test_projection_reduces_the_loss_and_beats_random_w():
    torch.manual_seed(0)
    G = tiny_g().eval()
    target = G.synthesis(G.map(torch.randn(1, 8)), "const")[0]
    result = project(G, target, steps=60, seed=0, frames=5)
    assert result.losses[-1] < 0.5 * result.losses[0]
    assert result.ws.shape == (G.num_ws, 16) and len(result.frames) == 6
    random_image = ((G.synthesis(G.map(torch.randn(1, 8)), "const")[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    assert result.psnr > psnr(random_image, result.target) + 3


def test_load_target_resizes_and_converts_with_a_note(tmp_path):
    path = tmp_path / "rgb.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(path)
    target, notes = load_target(path, (1, 16, 16))
    assert target.shape == (1, 16, 16) and target.dtype == torch.uint8
    assert any("resized" in n for n in notes) and any("grayscale" in n for n in notes)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(GancvError, match="bad.png"):
        load_target(tmp_path / "bad.png", (1, 16, 16))


@pytest.mark.parametrize("bad", [{"steps": 1}, {"rows": 0}, {"method": "cubic"}])
def test_interpolate_arguments_are_checked_in_z_and_in_w(bad):
    from gancv.tasks.inference import GenerativeModel
    from gancv.tasks.stylegan import StyleGANModel

    info = {"data": {"kind": "image", "shape": [1, 16, 16]}, "z_dim": 8}
    for cls in (GenerativeModel, StyleGANModel):  # one check serves both walks
        model = cls(tiny_g(), info, torch.device("cpu"))
        with pytest.raises(GancvError, match="steps >= 2|lerp or slerp"):
            model.interpolate(**{"steps": 3, "rows": 1, **bad})


def test_faces_heldout_split_is_disjoint_from_train():
    train, held = load_data("faces:train"), load_data("faces:heldout")
    assert len(train) == 180 and len(held) == 20
    seen = {x.numpy().tobytes() for x in train.x}
    assert not any(x.numpy().tobytes() in seen for x in held.x)


# ---- training and the trained model -------------------------------------------------------------
@pytest.mark.slow
def test_training_runs_every_phase_and_exports_a_stylegan_model(sg_run):
    import json

    rows = [json.loads(line) for line in (sg_run / "metrics.jsonl").read_text().splitlines()]
    assert {"d_loss", "g_loss", "r1", "pl"} <= set(rows[-1])
    assert json.loads((sg_run / "model" / "config.json").read_text())["task"] == "stylegan"
    model = gancv.load(sg_run, device="cpu")
    assert type(model).__name__ == "StyleGANModel" and model.conditional
    assert torch.count_nonzero(model.generator.w_avg) > 0  # the EMA copy carries the tracked mean
    a, b = model.sample(4, seed=3), model.sample(4, seed=3)
    assert a.dtype == torch.uint8 and a.shape == (4, 1, 16, 16) and torch.equal(a, b)
    flat = model.sample(4, seed=3, truncation=0.0, labels=2)
    assert torch.equal(flat[0], flat[3])  # psi 0: every sample of a class is the mean image


@pytest.mark.slow
def test_resume_continues_the_stylegan_run(tmp_path):
    out = tmp_path / "r"
    gancv.train(make_config(None, TINY_RUN), out=out)
    gancv.train({"steps": 6}, resume=out)
    assert '"step": 6' in (out / "metrics.jsonl").read_text()


def test_stylegan_task_needs_a_stylegan_generator():
    cfg = make_config(None, [t for t in TINY_RUN if not t.startswith("generator.")] + ["generator.name=dcgan", "generator.width=8"])
    with pytest.raises(GancvError, match="generator.name=stylegan"):
        gancv.train(cfg, out="/nonexistent/never-written")


def test_style_mix_grid_layout(sg_run):
    model = gancv.load(sg_run, device="cpu")
    grid = model.style_mix(rows=2, cols=3, seed=1, cutoff=2)
    assert grid.shape == (12, 1, 16, 16) and int(grid[0].max()) == 0  # blank corner
    ws = model.ws(5, seed=1)
    sources = model.synthesize(ws)
    assert torch.equal(grid[1:4], sources[2:5])  # top row: column sources
    assert torch.equal(grid[4], sources[0]) and torch.equal(grid[8], sources[1])  # left column: row sources
    mixed = ws[2].clone()
    mixed[:2] = ws[1, :2]
    assert torch.equal(grid[9], model.synthesize(mixed[None])[0])
    with pytest.raises(GancvError, match="cutoff"):
        model.style_mix(cutoff=model.num_ws)


def test_directions_edits_and_label_directions(sg_run):
    model = gancv.load(sg_run, device="cpu")
    dirs, _ = model.directions(num=3)
    assert dirs.shape == (3, model.w_dim)
    ws = model.ws(2, seed=0)
    assert torch.allclose(model.edit(ws, dirs[0], 0.0), ws)
    grid = model.direction_grid(dirs[0], ws, strength=2, steps=5)
    assert grid.shape == (10, 1, 16, 16) and torch.equal(grid[2], model.synthesize(ws[:1])[0])
    moved = model.sample(2, seed=0, direction=0, strength=4.0)
    assert not torch.equal(moved, model.sample(2, seed=0))
    label_dirs, acc = model.directions(method="labels", samples_per_class=40)
    assert label_dirs.shape == (10, model.w_dim) and torch.allclose(label_dirs.norm(dim=1), torch.ones(10))
    assert float(acc.mean()) > 0.5  # classes are linearly separable in W for a conditional mapping
    with pytest.raises(GancvError, match="out of range"):
        model.sample(1, direction=99)
    w_frames = model.interpolate(steps=4, rows=2, seed=0)
    assert w_frames.shape == (8, 1, 16, 16)


@pytest.mark.slow
def test_cli_mix_directions_project_interpolate(sg_run, face_png, tmp_path, capsys):
    code, _, err = run_cli(capsys, "sample", sg_run, "--mix", "-n", 4, "--out", tmp_path / "mix.png", "--seed", 0)
    assert code == 0, err
    assert Image.open(tmp_path / "mix.png").size == (3 * 18 * 4 + 2 * 4, 3 * 18 * 4 + 2 * 4)
    code, _, err = run_cli(capsys, "sample", sg_run, "-n", 4, "--direction", 1, "--strength", -2, "--out", tmp_path / "d.png")
    assert code == 0, err
    code, _, err = run_cli(capsys, "directions", sg_run, "--out", tmp_path / "dirs", "--num", 2, "--steps", 3)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "dirs").iterdir()) == ["direction_00.png", "direction_01.png", "directions.npy"]
    code, out, err = run_cli(capsys, "project", sg_run, face_png, "--out", tmp_path / "proj", "--steps", 20, "--json")
    assert code == 0, err
    assert "resized" in out  # 25 px face -> 16 px model, reported
    names = {p.name for p in (tmp_path / "proj").iterdir()}
    assert {"reconstruction.png", "comparison.png", "latent.npy", "progress.gif", "report.json"} <= names
    assert np.load(tmp_path / "proj" / "latent.npy").shape == (6, 16)
    code, _, err = run_cli(capsys, "directions", sg_run, "--out", tmp_path / "edit", "--num", 1, "--steps", 3,
                           "--latent", tmp_path / "proj" / "latent.npy")
    assert code == 0, err
    assert Image.open(tmp_path / "edit" / "direction_00.png").size[0] == 3 * 18 * 4 + 2 * 4
    for method in ("lerp", "slerp"):
        assert run_cli(capsys, "interpolate", sg_run, "--out", tmp_path / f"{method}.gif", "--method", method)[0] == 0
    code, _, err = run_cli(capsys, "interpolate", sg_run, "--out", tmp_path / "x.gif", "--method", "cubic")
    assert code == 2 and "lerp or slerp" in err


def test_cli_w_space_operations_on_a_dcgan_exit_2(trained_run, face_png, tmp_path, capsys):
    for args in (["sample", trained_run, "--mix", "--out", tmp_path / "m.png"],
                 ["sample", trained_run, "--direction", 0, "--out", tmp_path / "d.png"],
                 ["directions", trained_run, "--out", tmp_path / "dirs"],
                 ["project", trained_run, face_png, "--out", tmp_path / "p"]):
        code, _, err = run_cli(capsys, *args)
        assert code == 2 and "StyleGAN" in err and "Traceback" not in err, args


def test_cli_bad_inputs_exit_2(sg_run, tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", *TINY_RUN[:-1], "image_size=24", "--out", tmp_path / "r")
    assert code == 2 and "power of two" in err
    code, _, err = run_cli(capsys, "project", sg_run, tmp_path / "missing.png", "--out", tmp_path / "p")
    assert code == 2 and "missing.png" in err
    (tmp_path / "w.npy").write_bytes(b"junk")
    code, _, err = run_cli(capsys, "directions", sg_run, "--out", tmp_path / "d", "--latent", tmp_path / "w.npy")
    assert code == 2 and "w.npy" in err
    np.save(tmp_path / "wrong.npy", np.zeros((3, 7), np.float32))
    code, _, err = run_cli(capsys, "directions", sg_run, "--out", tmp_path / "d2", "--latent", tmp_path / "wrong.npy")
    assert code == 2 and "does not fit this model" in err
    code, _, err = run_cli(capsys, "sample", sg_run, "--truncation", 5, "--out", tmp_path / "t.png")
    assert code == 2 and "psi" in err
    code, _, err = run_cli(capsys, "directions", sg_run, "--out", tmp_path / "d3", "--method", "pca")
    assert code == 2 and "sefa or labels" in err


@pytest.mark.slow
def test_inversion_benchmark_quick(capsys):
    import json

    code, out, err = run_cli(capsys, "benchmark", "inversion", "--quick", "--json", "--device", "cpu")
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    psnrs = result["psnr_db"]
    assert result["benchmark"] == "inversion" and result["heldout_faces"] == 2
    assert psnrs["w_plus"] > psnrs["random_w_mean_of_8"] + 3  # even a 20-step model inverts far better than chance
    if result["lpips_available"]:  # both W+ reconstructions scored by the same LPIPS metric
        assert 0 <= result["lpips_w_plus"] < 1 and 0 <= result["lpips_w_plus_lpips_l2"] < 1


@pytest.mark.slow
def test_memory_benchmark_quick_counts_every_phase(capsys):
    import json

    code, out, err = run_cli(capsys, "benchmark", "stylegan-memory", "--quick", "--json")
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert set(result["activations_gib"]) == {"G_main", "D_main", "D_r1"} and result["batch_size"] == 4
    assert 0 < result["estimated_peak_gib"] < 1 and result["fits_24gb_without_checkpointing"]
    measured = result["measured"]
    assert measured["phases"] == ["D", "Dreg", "G"] and 0 < measured["training_peak_gib"] < 2
    assert result["measured_peak_gib"] == measured["training_peak_gib"]  # CPU: the RSS rise is the figure


@pytest.mark.slow
def test_memory_estimate_scales_with_batch_and_checkpointing_saves_memory():
    from gancv.bench.stylegan import estimate_training_memory

    tiny = ["image_size=16", "generator.channel_base=64", "generator.channel_max=16", "generator.mapping_layers=2",
            "discriminator.channel_base=64", "discriminator.channel_max=16"]
    small = estimate_training_memory("stylegan-faces", 2, overrides=tiny)["activations_bytes"]
    big = estimate_training_memory("stylegan-faces", 8, overrides=tiny)["activations_bytes"]
    ckpt = estimate_training_memory("stylegan-faces", 8, checkpointing=True, overrides=tiny)["activations_bytes"]
    # activations grow with the batch; the weight tensors saved for backward do not
    assert 2 < big["G_main"] / small["G_main"] < 4.5 and 2 < big["D_main"] / small["D_main"] < 4.5
    assert ckpt["G_main"] < 0.5 * big["G_main"]


def test_stylegan_trains_with_adaptive_augmentation(tmp_path):
    import json

    out = tmp_path / "ada"
    gancv.train(make_config(None, TINY_RUN + ["augment=translation,cutout", "ada_target=0.6", "steps=2"]), out=out)
    row = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert "aug_p" in row and "r1" in row


def test_grad_checkpoint_option_switches_on_stylegan_block_checkpointing():
    from gancv.training.precision import enable_grad_checkpointing

    G = tiny_g()
    assert not G.checkpointing and enable_grad_checkpointing(G) and G.checkpointing
