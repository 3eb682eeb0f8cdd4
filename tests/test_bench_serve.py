"""`gancv benchmark serve --quick`, in its own module: it drives its own Chromium, and Playwright's
sync API allows one per thread, so it must not overlap test_serve's module-wide browser."""
import json

import pytest

pytest.importorskip("gradio")


@pytest.mark.slow
def test_serve_benchmark_quick(capsys):
    """`gancv benchmark serve --quick`: a real `gancv serve` child process, timed from outside."""
    from gancv.cli import main

    assert main(["benchmark", "serve", "--quick", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["http_ok"] and result["quick"] and result["count"] == 16
    assert 0 < result["first_generation_s"] < 60 and result["server_start_s"] > 0
    assert result["first_generation_server_cpu_s"] is not None and result["handler_cpu_s"] > 0
    assert result["first_generation_goal_met"] == (result["first_generation_s"] < 2.0)
