"""The mode-collapse benchmarks' --quick variants, end to end through the CLI (as CI runs them)."""
import json

import pytest

from gancv.bench import BENCHMARKS
from gancv.cli import main


def run_json(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr().out
    assert code == 0
    return json.loads(out.strip().splitlines()[-1])


def test_registered():
    assert {"mode-coverage", "stacked-digits"} <= set(BENCHMARKS.names())


@pytest.mark.slow
def test_mode_coverage_quick(capsys):
    result = run_json(capsys, "benchmark", "mode-coverage", "--quick", "--json", "--device", "cpu")
    assert result["benchmark"] == "mode-coverage" and result["quick"] and result["samples"] == 2500
    for mixture, modes in (("ring", 8), ("grid", 25)):
        entry = result[mixture]
        assert entry["modes"] == modes
        for method in ("ours", "baseline"):
            runs = entry[method]["runs"]
            assert len(runs) == len(result["seeds"])
            assert all(0 <= r["covered"] <= modes and 0.0 <= r["high_quality"] <= 1.0 for r in runs)
            assert all(r["train_seconds"] > 0 and r["train_cpu_seconds"] > 0 for r in runs)
            assert entry[method]["covered"]["mean"] == pytest.approx(sum(r["covered"] for r in runs) / len(runs))
        # The baseline differs from ours only in the stabilising settings, not in budget or data.
        assert entry["baseline"]["settings"]["pack"] == 1
        assert entry["baseline"]["settings"]["steps"] == entry["ours"]["settings"]["steps"]
        assert entry["baseline"]["settings"]["lr_decay_start"] is None
        assert entry["baseline"]["settings"]["generator"].get("latent_codes", 0) == 0
    assert result["anchors"]["grid"]["PacGAN4"]["modes"] == 24.8
    # The grid's tuned model samples through discriminator rejection sampling (its preset exports
    # the calibrated D); its plain samples are scored beside them.
    ours = result["grid"]["ours"]
    assert "rejection" in ours["sampling"] and ours["settings"]["drs"]["enabled"]
    assert 0.0 < ours["drs_acceptance"]["mean"] <= 1.0 and "high_quality" in ours["without_drs"]
    assert all(0.0 <= r["without_drs"]["high_quality"] <= 1.0 for r in ours["runs"])
    assert result["grid"]["baseline"]["sampling"] == "plain" and result["ring"]["ours"]["sampling"] == "plain"


@pytest.mark.slow
def test_stacked_digits_quick(capsys):
    result = run_json(capsys, "benchmark", "stacked-digits", "--quick", "--json", "--device", "cpu")
    assert result["benchmark"] == "stacked-digits" and result["samples"] == 500
    # The judge must read real stacked digits well before its verdict on samples means anything.
    assert result["classifier"]["channel_accuracy"] > 0.9
    for method in ("ours", "baseline"):
        run = result[method]["runs"][0]
        assert 1 <= run["covered"] <= 1000 and run["reverse_kl"] >= 0.0
        # The per-channel balance diagnostic: one digit histogram per colour channel.
        assert len(run["channel_kl"]) == 3 and all(k >= 0.0 for k in run["channel_kl"])
        assert all(sum(share) == pytest.approx(1.0, abs=1e-3) for share in run["channel_digit_share"])
        assert 0.0 <= run["unsure_share"] <= 1.0
    real = result["classifier"]["real_data"]
    assert real["unsure_share"] < 0.2 and max(real["channel_kl"]) < 0.1
    assert result["kl_floor_perfect_sampler"] == pytest.approx(999 / 1000, abs=1e-4)


def test_stacked_baseline_samples_plainly():
    from gancv.bench.modes import stacked_methods

    # The plain DCGAN baseline switches DRS off even where the tuned preset turns it on.
    assert all(stacked_methods(quick)["baseline"]["drs"] == {"enabled": False} for quick in (True, False))


@pytest.mark.slow
def test_stacked_digits_samples_through_drs_when_enabled(capsys, monkeypatch):
    """Ours trained with drs.enabled samples through rejection sampling and is scored plain beside it."""
    from gancv.bench import modes

    methods = modes.stacked_methods(True)
    methods["ours"]["drs"] = {"enabled": True, "steps": 5, "burn_in": 300}
    monkeypatch.setattr(modes, "stacked_methods", lambda quick: methods)
    result = run_json(capsys, "benchmark", "stacked-digits", "--quick", "--json", "--device", "cpu")
    ours, baseline = result["ours"], result["baseline"]
    assert "rejection" in ours["sampling"] and ours["settings"]["drs"]["enabled"]
    assert 0.0 < ours["drs_acceptance"]["mean"] <= 1.0
    plain = ours["runs"][0]["without_drs"]
    assert 1 <= plain["covered"] <= 1000 and 0.0 <= plain["unsure_share"] <= 1.0 and len(plain["channel_kl"]) == 3
    assert ours["without_drs"]["covered"]["mean"] == plain["covered"]
    assert baseline["sampling"] == "plain" and "without_drs" not in baseline["runs"][0]
