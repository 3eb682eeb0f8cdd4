"""The --quick variants of the evaluation benchmarks run end to end and report their figures."""
import dataclasses
import json

import pytest

from gancv.bench import evaluation
from gancv.cli import main


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fid-floor", "augmentation"])
def test_quick_benchmark(name, capsys, monkeypatch):
    import gancv.api

    calls = []
    real_synthesize = gancv.api.synthesize

    def counting_synthesize(*args, **kwargs):
        calls.append(args)
        return real_synthesize(*args, **kwargs)

    monkeypatch.setattr(gancv.api, "synthesize", counting_synthesize)
    code = main(["benchmark", name, "--quick", "--json", "--device", "cpu"])
    out = capsys.readouterr()
    assert code == 0, out.err
    result = json.loads(out.out.strip().splitlines()[-1])
    assert result["benchmark"] == name and result["quick"] is True
    if name == "fid-floor":
        assert result["fid_real_half_vs_half"] < result["fid_real_vs_noise"]
        assert result["timed_samples"] == 2000 and result["fid_seconds"] > 0
    else:
        # The whole path ran: a cGAN, `gancv augment` (synthesize) writing the set, three classifiers.
        assert len(calls) == 1 and calls[0][1] == 20 * evaluation.QUICK_AUGMENT.oversample
        assert 0 <= result["acc_real_only_mean"] <= 1 and len(result["per_seed"]) == 1
        row = result["per_seed"][0]
        # A 60-step GAN draws mostly unreadable digits, so the filter keeps few of its 600 samples.
        assert 0 < row["synthetic_images"] <= 200 and row["test_images"] == 1797 - 100 == result["test_images"]
        assert 0 <= row["acc_synthetic_only_cas"] <= 1 and 0 <= row["filter_agreement"] <= 1
        assert result["gain_points_mean"] == pytest.approx(
            100 * (result["acc_real_plus_synthetic_mean"] - result["acc_real_only_mean"]), abs=0.05)
        assert result["gain_points_ci95"] is None  # one seed: no interval, rather than a made-up one
        assert result["cpu_seconds"] > 0 and result["wall_seconds"] > 0


def test_quick_augmentation_only_shrinks_sizes():
    full, quick = evaluation.AUGMENT, evaluation.QUICK_AUGMENT
    sizes = {"seeds", "gan_steps", "gan_width", "per_class", "classifier_steps"}
    for f in dataclasses.fields(full):
        if f.name not in sizes:
            assert getattr(quick, f.name) == getattr(full, f.name), f.name
    assert len(full.seeds) >= 5


def test_seed_interval_is_the_student_t_interval():
    mean, lo, hi = evaluation._mean_ci([1.0, 2.0, 3.0])
    # t(0.975, df=2) = 4.302653; sample sd = 1; half width = 4.302653 / sqrt(3)
    assert mean == 2.0 and hi - mean == pytest.approx(4.302653 / 3 ** 0.5, rel=1e-6) and mean - lo == hi - mean
    assert evaluation._mean_ci([0.5]) == (0.5, None, None)
