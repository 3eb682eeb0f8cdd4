"""The --quick variants of the evaluation benchmarks run end to end and report their figures."""
import json

import pytest

from gancv.cli import main


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fid-floor", "augmentation"])
def test_quick_benchmark(name, capsys):
    code = main(["benchmark", name, "--quick", "--json", "--device", "cpu"])
    out = capsys.readouterr()
    assert code == 0, out.err
    result = json.loads(out.out.strip().splitlines()[-1])
    assert result["benchmark"] == name and result["quick"] is True
    if name == "fid-floor":
        assert result["fid_real_half_vs_half"] < result["fid_real_vs_noise"]
        assert result["timed_samples"] == 2000 and result["fid_seconds"] > 0
    else:
        assert 0 <= result["acc_real_only_mean"] <= 1 and len(result["per_seed"]) == 1
        assert result["gain_points_mean"] == pytest.approx(
            100 * (result["acc_real_plus_synthetic_mean"] - result["acc_real_only_mean"]), abs=0.05)
