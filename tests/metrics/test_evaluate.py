"""`gancv evaluate`, `gancv augment`, periodic evaluation: CLI, API and their bad-input paths."""
import csv
import json
import pickle

import numpy as np
import pytest

import gancv
from gancv.cli import main
from gancv.data import load_data
from gancv.metrics import METRICS

TINY = ["data=digits", "image_size=16", "channels=1", "batch_size=16", "steps=6", "generator.width=8",
        "discriminator.width=8", "log_every=2", "sample_every=3", "checkpoint_every=3", "progress=false", "device=cpu"]


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _npz(path, images, labels=None):
    arrays = {"samples": images.permute(0, 2, 3, 1).numpy()}
    if labels is not None:
        arrays["labels"] = labels.numpy()
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="module")
def real16():
    bundle = load_data("digits", image_size=16, channels=1)
    return bundle.x, bundle.y


@pytest.fixture(scope="module")
def cond_run(tmp_path_factory):
    from gancv.config import make_config

    out = tmp_path_factory.mktemp("cond") / "run"
    gancv.train(make_config(None, TINY + ["conditional=true", "steps=4"]), out=out)
    return out


@pytest.mark.slow
def test_every_metric_on_real_digits(tmp_path, real16, capsys):
    x, y = real16
    path = _npz(tmp_path / "real.npz", x[:400], y[:400])
    names = ",".join(METRICS.names())
    code, out, err = cli(capsys, "evaluate", "--fake", path, "--real", "digits", "--metrics", names, "--json")
    assert code == 0, err
    m = json.loads(out.strip().splitlines()[-1])["metrics"]
    assert set(m) >= {"fid", "kid", "is", "precision", "recall", "density", "coverage", "gan_test", "cas"}
    assert m["precision"] > 0.9 and m["coverage"] > 0.5 and m["gan_test"] > 0.5 and m["cas"] > 0.3


def test_real_beats_noise(tmp_path, real16):
    x, _ = real16
    noise = np.random.default_rng(0).integers(0, 256, size=(400, 16, 16, 1), dtype=np.uint8)
    np.savez(tmp_path / "noise.npz", samples=noise)
    _npz(tmp_path / "real.npz", x[:400])
    good = gancv.evaluate(fake=tmp_path / "real.npz", real="digits", metrics="fid,pr", device="cpu")["metrics"]
    bad = gancv.evaluate(fake=tmp_path / "noise.npz", real="digits", metrics="fid,pr", device="cpu")["metrics"]
    assert good["fid"] < bad["fid"] / 10 and good["precision"] > bad["precision"]


def test_size_mismatch_resizes_with_warning(tmp_path, real16, capsys):
    small = load_data("digits", image_size=8, channels=1).x[:200]
    path = _npz(tmp_path / "small.npz", small)
    code, out, err = cli(capsys, "evaluate", "--fake", path, "--real", "digits", "--image-size", 16, "--json")
    assert code == 0, err
    assert "resizing the fakes" in err and "8x8x1" in err
    assert json.loads(out.strip().splitlines()[-1])["image_size"] == 16


def test_run_evaluation_and_gan_test_needs_labels(trained_run, capsys):
    code, out, err = cli(capsys, "evaluate", trained_run, "-n", 200, "--metrics", "fid,dc", "--json")
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["n_fake"] == 200
    code, _, err = cli(capsys, "evaluate", trained_run, "-n", 50, "--metrics", "gan-test")
    assert code == 2 and "no labels" in err and "Traceback" not in err


@pytest.mark.parametrize("case", ["few", "metric", "empty", "both", "npzkey", "no-real"])
def test_bad_input_exits_2(case, tmp_path, real16, trained_run, capsys):
    x, _ = real16
    fake = _npz(tmp_path / "f.npz", x[:50])
    args = {
        "few": ["--fake", fake, "--real", "digits", "--metrics", "fid"],
        "metric": ["--fake", fake, "--real", "digits", "--metrics", "fid,fidd"],
        "empty": ["--fake", tmp_path / "empty", "--real", "digits"],
        "both": [trained_run, "--fake", fake, "--real", "digits"],
        "npzkey": ["--fake", tmp_path / "k.npz", "--real", "digits"],
        "no-real": ["--fake", fake],
    }[case]
    (tmp_path / "empty").mkdir()
    np.savez(tmp_path / "k.npz", images=np.zeros((3, 8, 8, 1), np.uint8))
    code, _, err = cli(capsys, "evaluate", *args)
    assert code == 2 and "Traceback" not in err
    expect = {"few": "at least 129", "metric": "choose from: cas, dc, fid", "empty": "", "both": "exactly one",
              "npzkey": "no 'samples'", "no-real": "--real"}[case]
    assert expect in err


def test_inception_offline_says_which_file_where(tmp_path, real16, capsys):
    fake = _npz(tmp_path / "f.npz", real16[0][:50])
    code, _, err = cli(capsys, "evaluate", "--fake", fake, "--real", "digits", "--features", "inception")
    assert code == 2 and "weights-inception-2015-12-05-6726825d.pth" in err and "offline" in err


def test_inception_weights_are_never_unpickled(tmp_path, real16, capsys):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    weights = tmp_path / "weights.pth"
    weights.write_bytes(pickle.dumps(Evil()))
    fake = _npz(tmp_path / "f.npz", real16[0][:50])
    code, _, err = cli(capsys, "evaluate", "--fake", fake, "--real", "digits", "--features", "inception",
                       "--inception-weights", weights)
    assert code == 2 and not marker.exists() and "not a readable" in err


def _fidelity_layout_weights(path, conv_value):
    """A state dict with exactly the keys and shapes of torch-fidelity's FID Inception (the
    module's own state_dict), each tensor a broadcast of one number so the file stays tiny."""
    import torch
    from unittest import mock

    fidelity = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")
    cls = fidelity.FeatureExtractorInceptionV3
    # Build the bare network: no weights file, no download, nothing loaded.
    with mock.patch.object(fidelity, "load_state_dict_from_url", return_value={}), \
            mock.patch.object(cls, "load_state_dict", return_value=None):
        layout = cls("inception-v3-compat", ["2048"]).state_dict()

    def fill(key, t):
        if not t.is_floating_point():
            return t.clone()
        leaf = key.rsplit(".", 1)[-1]
        if ".bn." in key:  # identity batch norm
            value = {"running_var": 1.0, "weight": 1.0}.get(leaf, 0.0)
        else:  # weights averaging their inputs (scaled by conv_value) keep activations O(1) through the depth
            value = conv_value * t.shape[0] / t.numel() if leaf == "weight" else 0.0
        return torch.full((1,), value, dtype=t.dtype).expand(t.shape)

    torch.save({k: fill(k, t) for k, t in layout.items()}, path)
    return path


@pytest.mark.slow
def test_inception_weights_in_fidelity_layout_load_and_drive_the_features(tmp_path, real16):
    """The real weights cannot be fetched offline; a file in their exact key layout goes through
    the same loader (--inception-weights -> weights_only load -> torch-fidelity's strict load)."""
    import torch

    from gancv.metrics.features import create_extractor

    images = real16[0][:2]
    out = {}
    for value in (1.0, 1.1):
        weights = _fidelity_layout_weights(tmp_path / f"w{value}.pth", value)
        assert weights.stat().st_size < 2_000_000  # the real file is ~92 MB
        extractor = create_extractor("inception", size=16, channels=1, weights=str(weights))
        feats, logits = extractor(images)
        assert extractor.dim == 2048 and feats.shape == (2, 2048) and logits.shape == (2, 1008)
        assert torch.isfinite(feats).all() and torch.isfinite(logits).all()
        out[value] = feats
    assert not torch.allclose(out[1.0], out[1.1])  # the loaded numbers, not an initialisation, made the features


def test_augment_writes_imagefolder_and_manifest(cond_run, tmp_path, capsys):
    out = tmp_path / "synth"
    code, _, err = cli(capsys, "augment", cond_run, "--per-class", 3, "--out", out, "--seed", 5)
    assert code == 0, err
    rows = list(csv.DictReader(open(out / "manifest.csv")))
    assert len(rows) == 30 and set(rows[0]) == {"file", "label", "seed", "model"}
    assert sorted({r["label"] for r in rows}) == [str(c) for c in range(10)]
    assert all((out / r["file"]).is_file() and r["file"].startswith(f"{r['label']}/") for r in rows)
    # Each row is reproducible on its own from its seed.
    model = gancv.load(cond_run, device="cpu")
    row = rows[7]
    import torch

    again = model.generate(model.noise(1, int(row["seed"])), torch.tensor([int(row["label"])]))[0]
    from PIL import Image

    assert (np.asarray(Image.open(out / row["file"])) == again[0].numpy()).all()
    # The folder is a labelled data set for evaluate (labels from the class folders).
    code, out_json, err = cli(capsys, "evaluate", "--fake", out, "--real", "digits", "--metrics", "gan-test", "--json")
    assert code == 0, err and "gan_test" in out_json


def test_augment_api_and_errors(cond_run, trained_run, tmp_path, capsys):
    manifest = gancv.synthesize(cond_run, 1, tmp_path / "api", device="cpu")
    assert manifest.name == "manifest.csv" and len(manifest.read_text().splitlines()) == 11
    code, _, err = cli(capsys, "augment", trained_run, "--per-class", 2, "--out", tmp_path / "u")
    assert code == 2 and "unconditional" in err
    code, _, err = cli(capsys, "augment", cond_run, "--per-class", 2, "--out", tmp_path / "api")
    assert code == 2 and "not an empty directory" in err


@pytest.mark.slow
def test_periodic_evaluation_keeps_best(tmp_path):
    from gancv.config import make_config

    cfg = make_config(None, TINY + ["eval_every=3", "eval_samples=200", "eval_metrics=fid,pr"])
    run = gancv.train(cfg, out=tmp_path / "run")
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"eval"' in line]
    assert [e["step"] for e in evals] == [3, 6]
    assert all(set(e["eval"]) == {"fid", "precision", "recall"} for e in evals)
    best = json.loads((run / "best" / "best.json").read_text())
    assert best["metric"] == "fid" and best["value"] == min(e["eval"]["fid"] for e in evals)
    assert gancv.load(run / "best", device="cpu").sample(2, seed=0).shape == (2, 1, 16, 16)


@pytest.mark.parametrize("bad", ["eval_every=-1", "eval_every=2 eval_metrics=nope", "eval_every=2 eval_samples=1"])
def test_eval_config_errors(bad):
    from gancv.config import make_config
    from gancv.errors import GancvError

    with pytest.raises(GancvError):
        make_config(None, bad.split())


def test_classifier_run_features_are_cached_in_the_run(cond_run, tmp_path, real16):
    path = _npz(tmp_path / "real.npz", real16[0][:300])
    spec = f"classifier:{cond_run}"
    first = gancv.evaluate(fake=path, real="digits", metrics="fid,is", features=spec, device="cpu")
    assert (cond_run / "classifier" / "classifier.safetensors").is_file()
    again = gancv.evaluate(fake=path, real="digits", metrics="fid,is", features=spec, device="cpu")
    assert first["metrics"] == again["metrics"] and first["features"] == spec


@pytest.mark.parametrize("spec", ["nope", "digits:x", "classifier", "inception:x"])
def test_bad_feature_specs(spec, tmp_path, real16, capsys):
    path = _npz(tmp_path / "f.npz", real16[0][:200])
    code, _, err = cli(capsys, "evaluate", "--fake", path, "--real", "digits", "--features", spec)
    assert code == 2 and "Traceback" not in err


@pytest.mark.parametrize("damage", ["garbage", "no-info"])
def test_a_damaged_classifier_cache_entry_is_rebuilt(damage):
    """A cache entry is trusted only if it loads and carries what its caller needs; else retrained."""
    from gancv.metrics.classifier import cache_root, heldout_classifier

    _, info = heldout_classifier("digits", 8, 1)
    (entry,) = [p for p in (cache_root() / "classifiers").iterdir() if "8px-1c-heldout" in p.name]
    cfg = entry / "config.json"
    if damage == "garbage":
        cfg.write_text("{not json")
    else:
        meta = json.loads(cfg.read_text())
        del meta["info"]
        cfg.write_text(json.dumps(meta))
    _, again = heldout_classifier("digits", 8, 1)
    assert again == info  # rebuilt by the same seeded recipe
    assert json.loads(cfg.read_text())["info"] == info
