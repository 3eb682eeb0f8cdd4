"""``gancv benchmark serve``: how fast the web app answers on this machine.

Trains a DCGAN on the builtin digits, serves it on 127.0.0.1, then measures (1) the Generate
handler alone, (2) the same request over HTTP (Gradio's REST call API), and (3) in headless
Chromium, page load and click-to-images for the first generation (the issue's goal: < 2 s on
CPU). Writes a screenshot of the browser after that first generation to
test-artifacts/serve-benchmark.png (gitignored).
"""
from __future__ import annotations

import json
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Callable

from . import BENCHMARKS

GOAL_FIRST_GENERATION_S = 2.0


def http_generate(url: str, model: str, seed: int, count: int, timeout_s: float = 60.0) -> dict:
    """POST to Gradio's call API and read the server-sent result: plain HTTP, no client library."""
    body = json.dumps({"data": [model, seed, "all (spread)", 0, count]}).encode()
    req = urllib.request.Request(url + "gradio_api/call/generate", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        event = json.loads(resp.read())["event_id"]
    with urllib.request.urlopen(url + f"gradio_api/call/generate/{event}", timeout=timeout_s) as resp:
        text = resp.read().decode()
    lines = text.splitlines()
    kind = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("event:")), "")
    data = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("data:")), "null")
    return {"event": kind, "data": json.loads(data)}


@BENCHMARKS.register("serve", description="web app latency: Generate handler, HTTP round trip, first generation in Chromium")
def serve_latency(quick: bool = False, device: str = "auto", log: Callable[[str], None] | None = None,
                  screenshot: Path | None = None) -> dict:
    from ..api import train
    from ..config import make_config
    from ..serve import free_port, start
    from ..serve.app import generate
    from ..serve.browser import Browser, chromium_path, generate_in_browser

    log = log or (lambda msg: None)
    count = 16
    overrides = ["progress=false", "device=cpu"] + (["steps=20", "generator.width=16", "discriminator.width=16"] if quick
                                                    else ["steps=600"])
    cfg = make_config("dcgan-digits", overrides)
    result: dict = {"benchmark": "serve", "quick": quick, "model": f"dcgan-digits ({cfg.steps} steps, width "
                    f"{cfg.generator.width}, {cfg.image_size} px)", "device": "cpu", "count": count}
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "digits"
        log(f"training {result['model']}")
        train(cfg, out=run)
        t0 = time.perf_counter()
        server = start([run], port=free_port(), device="cpu")
        result["start_s"] = round(time.perf_counter() - t0, 2)
        try:
            t0 = time.perf_counter()
            generate(server.catalog, server.outputs, "digits", 1, None, 0, count)
            result["handler_s"] = round(time.perf_counter() - t0, 3)
            t0 = time.perf_counter()
            reply = http_generate(server.url, "digits", 2, count)
            result["http_s"] = round(time.perf_counter() - t0, 3)
            result["http_ok"] = reply["event"] == "complete" and len(reply["data"][0]) == count
            if chromium_path() is None:
                result["browser"] = "skipped: no system Chromium (apt-get install chromium)"
            else:
                shot = screenshot or Path("test-artifacts") / f"serve-benchmark{'-quick' if quick else ''}.png"
                with Browser() as page:
                    result.update(generate_in_browser(page, server.url, shot))
                result["first_generation_goal_s"] = GOAL_FIRST_GENERATION_S
                result["first_generation_goal_met"] = result["first_generation_s"] < GOAL_FIRST_GENERATION_S
                result["screenshot"] = str(shot)
        finally:
            server.close()
    return result
