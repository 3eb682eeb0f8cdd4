import json

import pytest
from PIL import Image

from gancv.cli import main


@pytest.mark.slow
def test_demo_writes_samples_losses_report(tmp_path, monkeypatch, capsys):
    # The real demo trains the full preset; here the same code path runs a few steps.
    import gancv.demo

    real_run_demo = gancv.demo.run_demo
    monkeypatch.setattr(gancv.demo, "run_demo", lambda out, device, log: real_run_demo(out, device, log, steps=4))
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--device", "cpu"]) == 0
    for name in ["samples.png", "losses.png", "report.md", "model/config.json", "model/generator.safetensors"]:
        assert (out / name).is_file(), name
    report = (out / "report.md").read_text()
    assert "dcgan-digits" in report and "classes present" in report and "final D loss" in report
    assert Image.open(out / "samples.png").size[0] >= 8 * 32
    config = json.loads((out / "model/config.json").read_text())
    assert config["generator"]["name"] == "dcgan"


def test_digit_scorer_recognises_real_digits():
    from gancv.data import load_data
    from gancv.metrics.digits import score_digits

    real = load_data("digits", image_size=32, channels=1).x[:300]
    score = score_digits(real)
    assert score.classes_present == 10
    assert max(score.class_share) < 0.2  # the real digits are balanced
    noise = score_digits((real[:100] * 0).random_(0, 256))
    assert noise.confident < score.confident
