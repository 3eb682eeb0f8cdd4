"""``gancv benchmark serve``: how fast the web app answers on this machine.

Trains a DCGAN on the builtin digits, then starts ``gancv serve`` on it as a separate process,
exactly as a user would, and measures in headless Chromium (Playwright, the system's Chromium):
the page load and **the first generation** — the first click on Generate in the first browser
session on that fresh server, until all 16 images are decoded in the gallery (the issue's goal:
< 2 s on CPU). The server warms itself with one request before it prints its URL; the browser
opens the page after that line, as a user does, so the warm-up is in ``server_start_s``. A second click, the same request over Gradio's HTTP API and the Generate handler called
directly (no server) show where the time goes. CPU seconds are reported next to wall seconds
(the server's own, read from /proc), because wall time on a shared machine depends on its load.
Without a system Chromium the first generation is measured over the HTTP API instead and the
result says so. A screenshot after the first generation goes to test-artifacts/ (gitignored).
"""
from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from ..errors import GancvError
from . import BENCHMARKS

GOAL_FIRST_GENERATION_S = 2.0
COUNT = 16  # the Generate tab's default count: what a first click produces


def http_generate(url: str, model: str, seed: int, count: int, timeout_s: float = 60.0) -> dict:
    """The Generate tab's request over Gradio's HTTP call API (no browser, no client library)."""
    from ..serve import call_api

    return call_api(url, "generate", [model, seed, "all (spread)", 0, count], timeout_s)


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds a process has used so far (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


class ServeProcess:
    """``gancv serve RUN`` in a child process, the way a user starts it; stopped with Ctrl+C (SIGINT)."""

    def __init__(self, run: Path, port: int, log: Path):
        self.url = f"http://127.0.0.1:{port}/"
        self._log = open(log, "w+")
        cmd = [sys.executable, "-m", "gancv", "serve", str(run), "--port", str(port), "--device", "cpu"]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # the URL line must reach the log as it is printed
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def wait_ready(self, timeout_s: float = 300.0) -> float:
        """Seconds from the spawn until ``gancv serve`` prints its URL, which it does once the model
        is loaded, the page answers and its warm-up request is done: when a user would open it.
        (Polling the page instead would race the warm-up: the page answers before it is done.)"""
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout_s:
            self._log.seek(0)
            text = self._log.read()
            if "gancv serve: http" in text:
                return time.perf_counter() - t0
            if self.proc.poll() is not None:
                raise GancvError(f"gancv serve exited with {self.proc.returncode}: {text[-2000:]}")
            time.sleep(0.05)
        raise GancvError(f"gancv serve did not report its URL within {timeout_s:.0f} s")

    def cpu_s(self) -> float | None:
        return process_cpu_s(self.proc.pid)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


def _cpu_delta(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else round(after - before, 3)


@BENCHMARKS.register("serve", description="web app latency: first generation in Chromium on a fresh `gancv serve`, "
                     "HTTP round trip, Generate handler")
def serve_latency(quick: bool = False, device: str = "auto", log: Callable[[str], None] | None = None,
                  screenshot: Path | None = None) -> dict:
    from ..api import train
    from ..config import make_config
    from ..serve import free_port
    from ..serve.app import generate
    from ..serve.browser import Browser, chromium_path, click_generate, open_app
    from ..serve.models import OutputDir, load_catalog

    log = log or (lambda msg: None)
    overrides = ["progress=false", "device=cpu"] + (["steps=20", "generator.width=16", "discriminator.width=16"] if quick
                                                    else ["steps=600"])
    cfg = make_config("dcgan-digits", overrides)
    result: dict[str, Any] = {
        "benchmark": "serve", "quick": quick, "device": "cpu", "count": COUNT,
        "model": f"dcgan-digits ({cfg.steps} steps, width {cfg.generator.width}, {cfg.image_size} px)",
        "torch_threads": os.environ.get("OMP_NUM_THREADS", "default"),
    }
    browser = chromium_path() is not None
    result["first_generation_via"] = (
        "headless Chromium (Playwright): the first click on Generate in the first browser session on a freshly started "
        "`gancv serve` process -> all 16 images decoded in the gallery" if browser else
        "Gradio HTTP call API (no system Chromium: apt-get install chromium): the first request from outside to a freshly "
        "started `gancv serve` process, POST -> result event")
    result["note"] = ("`gancv serve` sends itself one Generate request before it prints its URL; like a user, the "
                      "benchmark opens the page once the URL is printed, so that warm-up is in server_start_s")
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "digits"
        log(f"training {result['model']}")
        train(cfg, out=run)

        log("starting `gancv serve` in a child process")
        server = ServeProcess(run, free_port(), Path(tmp) / "serve.log")
        try:
            result["server_start_s"] = round(server.wait_ready(), 2)
            result["server_start_cpu_s"] = server.cpu_s()
            if browser:
                shot = screenshot or Path("test-artifacts") / f"serve-benchmark{'-quick' if quick else ''}.png"
                with Browser() as page:
                    result["page_load_s"] = round(open_app(page, server.url), 3)
                    cpu0 = server.cpu_s()
                    result["first_generation_s"] = round(click_generate(page, COUNT), 3)
                    result["first_generation_server_cpu_s"] = _cpu_delta(cpu0, server.cpu_s())
                    shot.parent.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(shot))
                    result["screenshot"] = str(shot)
                    cpu0 = server.cpu_s()
                    result["second_generation_s"] = round(click_generate(page, COUNT, seed=1), 3)
                    result["second_generation_server_cpu_s"] = _cpu_delta(cpu0, server.cpu_s())
            cpu0, t0 = server.cpu_s(), time.perf_counter()
            reply = http_generate(server.url, "digits", 2, COUNT)
            key = "http_s" if browser else "first_generation_s"
            result[key] = round(time.perf_counter() - t0, 3)
            result[key.replace("_s", "_server_cpu_s")] = _cpu_delta(cpu0, server.cpu_s())
            result["http_ok"] = reply["event"] == "complete" and len(reply["data"][0]) == COUNT
        finally:
            server.close()

        # The handler alone, in this process (no server, no browser): sampling + enlarging + watermarking + PNG.
        catalog, outputs = load_catalog([run], device="cpu"), OutputDir()
        try:
            generate(catalog, outputs, "digits", 0, None, 0, COUNT)  # warm, as the server is when it serves
            t0, c0 = time.perf_counter(), time.process_time()
            generate(catalog, outputs, "digits", 3, None, 0, COUNT)
            result["handler_s"] = round(time.perf_counter() - t0, 3)
            result["handler_cpu_s"] = round(time.process_time() - c0, 3)
        finally:
            outputs.cleanup()
    result["first_generation_goal_s"] = GOAL_FIRST_GENERATION_S
    result["first_generation_goal_met"] = result["first_generation_s"] < GOAL_FIRST_GENERATION_S
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    result["benchmark_cpu_s"] = round(sum(u.ru_utime + u.ru_stime for u in usage), 1)
    result["load_average"] = round(os.getloadavg()[0], 2)
    return result
