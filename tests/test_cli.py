import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import gancv
from gancv.cli import main


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_presets_lists_required(capsys):
    code, out, _ = run_cli(capsys, "presets")
    assert code == 0
    for name in ["gan-mnist", "dcgan-digits", "gan-toy2d-grid", "dcgan-faces"]:
        assert name in out


def test_models_lists_registries(capsys):
    code, out, _ = run_cli(capsys, "models")
    assert code == 0 and "dcgan" in out and "mlp" in out and "bce" in out


def test_sample_png_npz_dir(trained_run, tmp_path, capsys):
    code, _, err = run_cli(capsys, "sample", trained_run, "-n", 6, "--out", tmp_path / "g.png", "--seed", 1)
    assert code == 0, err
    assert Image.open(tmp_path / "g.png").size[0] > 16
    assert run_cli(capsys, "sample", trained_run, "-n", 5, "--out", tmp_path / "s.npz", "--seed", 1)[0] == 0
    with np.load(tmp_path / "s.npz", allow_pickle=False) as data:
        assert data["samples"].shape == (5, 16, 16, 1) and data["samples"].dtype == np.uint8
        assert "labels" not in data
    assert run_cli(capsys, "sample", trained_run, "-n", 3, "--out", tmp_path / "dir")[0] == 0
    files = sorted(p.name for p in (tmp_path / "dir").iterdir())
    assert files == ["sample_00000.png", "sample_00001.png", "sample_00002.png"]
    assert Image.open(tmp_path / "dir" / files[0]).size == (16, 16)


def test_sample_seed_is_deterministic(trained_run):
    model = gancv.load(trained_run, device="cpu")
    a, b, c = model.sample(4, seed=3), model.sample(4, seed=3), model.sample(4, seed=4)
    assert a.dtype.is_floating_point is False and a.shape == (4, 1, 16, 16)
    assert (a == b).all() and not (a == c).all()


def test_truncation_changes_samples(trained_run):
    model = gancv.load(trained_run, device="cpu")
    assert model.noise(100, seed=0, truncation=0.5).abs().max() <= 0.5


@pytest.mark.parametrize("n", ["0", "-3"])
def test_bad_sample_count(trained_run, tmp_path, capsys, n):
    code, _, err = run_cli(capsys, "sample", trained_run, "-n", n, "--out", tmp_path / "g.png")
    assert code == 2 and "Traceback" not in err


def test_out_in_missing_directory(trained_run, tmp_path, capsys):
    code, _, err = run_cli(capsys, "sample", trained_run, "-n", 2, "--out", tmp_path / "nope" / "g.png")
    assert code == 2 and "does not exist" in err


def test_sample_class_on_unconditional(trained_run, tmp_path, capsys):
    code, _, err = run_cli(capsys, "sample", trained_run, "-n", 2, "--class", 1, "--out", tmp_path / "g.png")
    assert code == 2 and "unconditional" in err


@pytest.mark.parametrize("kind", ["npz", "pickle", "missing", "emptydir"])
def test_sample_from_something_that_is_not_a_run(tmp_path, capsys, kind):
    marker = tmp_path / "pwned"
    if kind == "npz":
        target = tmp_path / "x.npz"
        np.savez(target, a=np.zeros(3))
    elif kind == "pickle":
        class Evil:
            def __reduce__(self):
                return (open, (str(marker), "w"))
        target = tmp_path / "x.pkl"
        target.write_bytes(pickle.dumps(Evil()))
    elif kind == "missing":
        target = tmp_path / "nothing"
    else:
        target = tmp_path / "empty"
        target.mkdir()
    code, _, err = run_cli(capsys, "sample", target, "-n", 2, "--out", tmp_path / "g.png")
    assert code == 2 and "Traceback" not in err
    assert not marker.exists()


def test_model_dir_with_non_safetensors_weights(trained_run, tmp_path, capsys):
    import shutil

    model_dir = tmp_path / "model"
    shutil.copytree(trained_run / "model", model_dir)
    (model_dir / "generator.safetensors").write_bytes(pickle.dumps({"a": 1}))
    code, _, err = run_cli(capsys, "sample", model_dir, "-n", 2, "--out", tmp_path / "g.png")
    assert code == 2 and "safetensors" in err


def test_interpolate_png_and_gif(trained_run, tmp_path, capsys):
    assert run_cli(capsys, "interpolate", trained_run, "--out", tmp_path / "i.png", "--steps", 5, "--rows", 2)[0] == 0
    assert run_cli(capsys, "interpolate", trained_run, "--out", tmp_path / "i.gif", "--steps", 4, "--rows", 2)[0] == 0
    gif = Image.open(tmp_path / "i.gif")
    assert gif.n_frames == 6  # 4 forward + 2 back (ping-pong)
    assert run_cli(capsys, "interpolate", trained_run, "--out", tmp_path / "i.txt")[0] == 2


def test_train_errors(capsys, tmp_path):
    assert run_cli(capsys, "train", "--preset", "nope")[0] == 2
    code, _, err = run_cli(capsys, "train", "--preset", "dcgan-digits", "stepz=3", "--out", tmp_path / "x")
    assert code == 2 and "did you mean 'steps'" in err
    code, _, err = run_cli(capsys, "train", "--preset", "dcgan-digits", "data=nope:1", "--out", tmp_path / "x")
    assert code == 2 and "choose one of" in err
    code, _, err = run_cli(capsys, "train", "--resume", tmp_path / "notarun")
    assert code == 2


def test_train_cli_and_resume(tiny_overrides, tmp_path, capsys):
    run = tmp_path / "cli-run"
    code, _, err = run_cli(capsys, "train", *tiny_overrides, "steps=3", "--out", run)
    assert code == 0, err
    code, _, err = run_cli(capsys, "train", "--resume", run, "steps=4")
    assert code == 0, err
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 4


def test_data_check_cli(tmp_path, capsys):
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (8, 8), "red").save(tmp_path / "imgs" / "ok.png")
    (tmp_path / "imgs" / "empty.png").write_bytes(b"")
    code, out, _ = run_cli(capsys, "data", "check", f"folder:{tmp_path / 'imgs'}", "--json")
    assert code == 0
    report = json.loads(out.strip().splitlines()[-1])
    assert report["usable"] == 1 and len(report["problems"]) == 1


def test_console_script_exit_code_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "gancv", "sample", str(tmp_path), "-n", "1", "--out", str(tmp_path / "x.png")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("gancv: error:") and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_data_check_all_bad_exits_2(tmp_path, capsys):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.png").write_bytes(b"not an image")
    code, out, err = run_cli(capsys, "data", "check", f"folder:{tmp_path / 'bad'}")
    assert code == 2 and "a.png" in out and "no usable images" in err
