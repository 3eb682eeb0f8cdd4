"""Drive the web app in a real browser: Playwright + the system's Chromium (never a downloaded one).

Used by the browser tests and by ``gancv benchmark serve`` (first generation, click to image).
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from ..errors import GancvError

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
CANDIDATES = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]


def chromium_path() -> str | None:
    for path in CANDIDATES:
        if Path(path).is_file():
            return path
    return shutil.which("chromium")


class Browser:
    """A headless Chromium with a fresh, empty profile; use as a context manager."""

    def __init__(self, timeout_s: float = 60.0):
        self.timeout_ms = timeout_s * 1000
        self._pw: Any = None
        self._ctx: Any = None
        self._profile = tempfile.TemporaryDirectory(prefix="gancv-chromium-")

    def __enter__(self) -> Any:
        exe = chromium_path()
        if exe is None:
            raise GancvError("no system Chromium: apt-get install -y chromium (Playwright's own browsers are never downloaded)")
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            raise GancvError("browser checks need the playwright package: pip install playwright (no browser download)") from None
        self._pw = sync_playwright().start()
        self._ctx = self._pw.chromium.launch_persistent_context(
            self._profile.name, executable_path=exe, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900})
        self._ctx.set_default_timeout(self.timeout_ms)
        return self._ctx.pages[0] if self._ctx.pages else self._ctx.new_page()

    def __exit__(self, *exc: Any) -> None:
        try:
            if self._ctx is not None:
                self._ctx.close()
        finally:
            if self._pw is not None:
                self._pw.stop()
            self._profile.cleanup()


GALLERY_READY = """([count, before]) => {
  const imgs = Array.from(document.querySelectorAll('#generate-gallery img'));
  const srcs = imgs.map(i => i.src);
  return imgs.length >= count && imgs.every(i => i.complete && i.naturalWidth > 0)
         && !srcs.every(s => before.includes(s));
}"""


def open_app(page: Any, url: str) -> float:
    """Load the app until the Generate button is visible; -> seconds."""
    t0 = time.perf_counter()
    page.goto(url, wait_until="domcontentloaded")
    page.locator("#generate-button").wait_for(state="visible")
    return time.perf_counter() - t0


def click_generate(page: Any, count: int = 16, seed: int | None = None) -> float:
    """Click Generate and wait until the gallery shows ``count`` new, fully decoded images; -> seconds
    from the click to the last image shown (what the user waits for)."""
    if seed is not None:
        field = page.locator("#generate-seed input")
        field.fill(str(seed))
        field.blur()
    before = page.eval_on_selector_all("#generate-gallery img", "els => els.map(e => e.src)")
    t0 = time.perf_counter()
    page.locator("#generate-button").click()
    page.wait_for_function(GALLERY_READY, arg=[count, before])
    return time.perf_counter() - t0


def generate_in_browser(page: Any, url: str, screenshot: Path | None = None, count: int = 16) -> dict[str, float]:
    """Open the app, click Generate, wait until the gallery shows loaded images.

    Returns seconds for the page load and for click -> images visible (the first generation).
    """
    load_s = open_app(page, url)
    first_s = click_generate(page, count)
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=False)
    return {"page_load_s": round(load_s, 3), "first_generation_s": round(first_s, 3)}
