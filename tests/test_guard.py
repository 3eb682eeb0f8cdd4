"""The divergence guard: injected NaNs are rolled back from; hopeless runs stop with a clear message."""
import json

import pytest
import torch
from safetensors.torch import load_file

import gancv
from gancv.cli import main
from gancv.config import make_config
from gancv.errors import GancvError
from gancv.tasks.generation import GenerationTask
from gancv.training.checkpoint import checkpoint_dirs, load_state
from gancv.training.guard import DivergenceGuard


def inject_nan(monkeypatch, at_calls):
    """Make the G step's loss NaN on the given (1-based) calls: a test-only fault injection."""
    original = GenerationTask.g_step
    calls = {"n": 0}

    def g_step(self, batch):
        calls["n"] += 1
        out = original(self, batch)
        if calls["n"] in at_calls or "always" in at_calls:
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(GenerationTask, "g_step", g_step)
    return calls


def rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_injected_nan_is_rolled_back_and_the_run_finishes_finite(monkeypatch, tiny_overrides, tmp_path):
    inject_nan(monkeypatch, {5})  # step 5 (0-based 4): after the step-3 checkpoint
    run = gancv.train(make_config(None, tiny_overrides + ["ema_kimg=0.05"]), out=tmp_path / "nan")
    log = rows(run)
    events = [r for r in log if r.get("event") == "rollback"]
    assert len(events) == 1 and events[0]["step"] == 3 and events[0]["bad_step"] == 6 and events[0]["lr_scale"] == 0.5
    assert [r["step"] for r in log if "event" not in r] == [2, 4, 6]
    assert log[-1]["lr_generator"] == pytest.approx(1e-4) and log[-1]["lr_discriminator"] == pytest.approx(1e-4)
    assert all(v == v for r in log for v in r.values() if isinstance(v, float))  # no NaN was logged
    last = checkpoint_dirs(run)[-1]
    for name in ["generator", "discriminator", "generator_ema"]:
        weights = load_file(str(last / f"{name}.safetensors"))
        assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point()), name
    assert load_state(last / "state.pt")["guard"]["rollbacks"] == 1
    assert torch.isfinite(gancv.load(run, device="cpu").sample(4, seed=0).float()).all()


def test_nan_before_the_first_checkpoint_rolls_back_to_the_start(monkeypatch, tiny_overrides, tmp_path):
    inject_nan(monkeypatch, {1})
    run = gancv.train(make_config(None, tiny_overrides), out=tmp_path / "early")
    events = [r for r in rows(run) if r.get("event") == "rollback"]
    assert [e["step"] for e in events] == [0]
    assert load_state(checkpoint_dirs(run)[-1] / "state.pt")["step"] == 6


def test_gives_up_after_k_rollbacks_with_a_clear_message(monkeypatch, tiny_overrides, tmp_path, capsys):
    inject_nan(monkeypatch, {"always"})
    code = main(["train", "--out", str(tmp_path / "hopeless"), *tiny_overrides, "guard_max_rollbacks=2"])
    err = capsys.readouterr().err
    assert code == 2 and "training diverged" in err and "after 2 rollback(s)" in err and "Traceback" not in err
    assert len([r for r in rows(tmp_path / "hopeless") if r.get("event") == "rollback"]) == 2
    for ckpt in checkpoint_dirs(tmp_path / "hopeless"):  # nothing poisoned was ever written
        weights = load_file(str(ckpt / "generator.safetensors"))
        assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point())


def test_exploding_gradient_counts_as_divergence(tiny_overrides, tmp_path):
    with pytest.raises(GancvError, match="gradient norm .* above guard_grad_norm"):
        gancv.train(make_config(None, tiny_overrides + ["guard_grad_norm=1e-9", "guard_max_rollbacks=1"]),
                    out=tmp_path / "explode")


def test_guard_flags_on_device_and_resets():
    guard = DivergenceGuard(torch.device("cpu"), grad_limit=10.0)
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.full((3,), 2.0)
    guard.observe(torch.tensor(1.0), [p])
    assert guard.check() is None
    p.grad = torch.full((3,), 100.0)
    guard.observe(torch.tensor(1.0), [p])
    assert "gradient norm" in guard.check()
    guard.reset()
    p.grad = torch.tensor([1.0, float("inf"), 0.0])
    guard.observe(torch.tensor(1.0), [p])
    assert guard.check() == "non-finite loss or gradient"
    guard.reset()
    guard.observe(torch.tensor(float("nan")), [])
    assert guard.check() == "non-finite loss or gradient"


def test_without_grad_norm_the_weights_are_checked_instead():
    p = torch.nn.Parameter(torch.ones(3))
    guard = DivergenceGuard(torch.device("cpu"), grad_limit=0.0, params=[p])
    p.grad = torch.full((3,), float("nan"))  # not looked at: no per-step gradient norm
    guard.observe(torch.tensor(1.0), [p])
    assert guard.check() is None
    with torch.no_grad():
        p[1] = float("nan")
    assert guard.check() == "non-finite weights"
    guard.observe(torch.tensor(float("inf")), [p])
    assert guard.check() == "non-finite loss or gradient"


def test_injected_nan_is_caught_without_grad_norm(monkeypatch, tiny_overrides, tmp_path):
    inject_nan(monkeypatch, {5})
    run = gancv.train(make_config(None, tiny_overrides + ["guard_grad_norm=0"]), out=tmp_path / "cheap")
    assert len([r for r in rows(run) if r.get("event") == "rollback"]) == 1
    weights = load_file(str(checkpoint_dirs(run)[-1] / "generator.safetensors"))
    assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point())
