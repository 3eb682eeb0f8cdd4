import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import gancv
from gancv.config import make_config
from gancv.errors import GancvError
from gancv.training.checkpoint import checkpoint_dirs, load_state


def weights(path: Path) -> dict:
    return load_file(str(path))


def test_run_directory_layout(trained_run):
    run = trained_run
    for rel in ["config.yaml", "metrics.jsonl", "samples.png", "losses.png", "model/config.json",
                "model/generator.safetensors", "samples/step-0000003.png"]:
        assert (run / rel).is_file(), rel
    ckpts = checkpoint_dirs(run)
    assert [c.name for c in ckpts] == ["step-0000003", "step-0000006"]
    assert {p.name for p in ckpts[-1].iterdir()} == {"generator.safetensors", "discriminator.safetensors", "state.pt"}
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6]
    assert all({"d_loss", "g_loss", "img_per_s", "lr_generator"} <= set(r) for r in rows)
    state = load_state(ckpts[-1] / "state.pt")
    assert state["step"] == 6
    assert json.loads((run / "model" / "config.json").read_text())["gancv_version"] == gancv.__version__


def test_export_model_writes_weights_then_a_config_stamped_with_the_version(tmp_path):
    from gancv.training.checkpoint import export_model

    net = torch.nn.Linear(2, 3)
    export_model(tmp_path / "model", {"generator": net}, {"task": "generation", "preset": "p"})
    # one place stamps the version, for every task's export
    assert json.loads((tmp_path / "model" / "config.json").read_text()) == {
        "task": "generation", "preset": "p", "gancv_version": gancv.__version__}
    assert torch.equal(weights(tmp_path / "model" / "generator.safetensors")["weight"], net.weight.detach())
    assert not [p for p in (tmp_path / "model").iterdir() if p.name.startswith(".")]  # no temp files left


def test_training_changes_weights_and_losses_are_finite(tiny_config, tmp_path):
    torch.manual_seed(0)
    run = gancv.train(tiny_config, out=tmp_path / "r")
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(torch.isfinite(torch.tensor([r["d_loss"], r["g_loss"]])).all() for r in rows)
    first = weights(checkpoint_dirs(run)[0] / "generator.safetensors")
    last = weights(checkpoint_dirs(run)[-1] / "generator.safetensors")
    assert any(not torch.equal(first[k], last[k]) for k in first if first[k].is_floating_point())


def test_same_seed_same_run(tiny_overrides, tmp_path):
    a = gancv.train(make_config(None, tiny_overrides), out=tmp_path / "a")
    b = gancv.train(make_config(None, tiny_overrides), out=tmp_path / "b")
    wa, wb = weights(a / "model/generator.safetensors"), weights(b / "model/generator.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize("extra", [[], ["ema_kimg=0.05"], ["data=toy2d:ring", "image_size=null", "generator.name=mlp",
                                                             "discriminator.name=mlp", "z_dim=2"]])
def test_resume_continues_exactly(tiny_overrides, tmp_path, extra):
    straight = gancv.train(make_config(None, tiny_overrides + extra), out=tmp_path / "straight")
    half = gancv.train(make_config(None, tiny_overrides + extra + ["steps=3"]), out=tmp_path / "half")
    resumed = gancv.train({"steps": 6}, resume=half)
    assert resumed == half
    for name in ["generator", "discriminator"] + (["generator_ema"] if extra == ["ema_kimg=0.05"] else []):
        wa = weights(checkpoint_dirs(straight)[-1] / f"{name}.safetensors")
        wb = weights(checkpoint_dirs(half)[-1] / f"{name}.safetensors")
        assert wa.keys() == wb.keys()
        assert all(torch.equal(wa[k], wb[k]) for k in wa), name
    steps = [json.loads(line)["step"] for line in (half / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 3, 4, 6]  # the shorter first run logged its last step, 3


def test_resume_without_checkpoint(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(GancvError, match="config.yaml not found"):
        gancv.train({}, resume=tmp_path / "run")


def test_resume_from_truncated_checkpoint_is_clear(trained_run, tmp_path):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(trained_run, run)
    latest = checkpoint_dirs(run)[-1] / "generator.safetensors"
    latest.write_bytes(latest.read_bytes()[:100])
    with pytest.raises(GancvError, match="not a readable safetensors file"):
        gancv.train({"steps": 9}, resume=run)


def test_keep_checkpoints(tiny_overrides, tmp_path):
    run = gancv.train(make_config(None, tiny_overrides + ["checkpoint_every=1", "keep_checkpoints=2"]), out=tmp_path / "k")
    assert [c.name for c in checkpoint_dirs(run)] == ["step-0000005", "step-0000006"]


@pytest.mark.slow
def test_kill_minus_9_leaves_a_loadable_checkpoint(tmp_path):
    run = tmp_path / "killed"
    args = [sys.executable, "-m", "gancv", "train", "--out", str(run), "data=digits", "image_size=16", "channels=1",
            "batch_size=16", "steps=100000", "generator.width=8", "discriminator.width=8", "checkpoint_every=2",
            "log_every=1", "sample_every=1000", "progress=false", "device=cpu", "keep_checkpoints=2"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and len(checkpoint_dirs(run)) < 3:
            time.sleep(0.05)
        assert len(checkpoint_dirs(run)) >= 1, proc.stderr.read().decode() if proc.poll() is not None else "no ckpt"
        time.sleep(0.137)  # land somewhere in the middle of writing
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    last = checkpoint_dirs(run)[-1]
    step = load_state(last / "state.pt")["step"]
    model = gancv.load(run, device="cpu")  # the export written with the last checkpoint
    assert model.sample(2, seed=0).shape == (2, 1, 16, 16)
    resumed = gancv.train({"steps": step + 2}, resume=run)
    assert load_state(checkpoint_dirs(resumed)[-1] / "state.pt")["step"] == step + 2


def test_training_step_does_not_walk_module_trees(tiny_config, tmp_path):
    # Parameter lists are built once: the per-phase requires_grad toggle and the EMA update walked
    # the module trees on every step (~10 % of a toy2d MLP step, which is mostly per-op overhead).
    from gancv.training.loop import Trainer

    trainer = Trainer(tiny_config, tmp_path / "r")
    trainer.train_step()

    def walked(*args, **kwargs):
        raise AssertionError("a module tree was walked during a training step")

    for net in [*trainer.networks.values(), *(e.shadow for e in trainer.emas.values())]:
        for module in net.modules():
            module.parameters = module.named_parameters = module.requires_grad_ = walked
    for _ in range(3):
        trainer.train_step()
    assert trainer.step == 4
