"""``gancv serve``: a local web app for trained models and live runs (Gradio)."""
from __future__ import annotations

import inspect
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import GancvError
from .models import MAX_UPLOAD_BYTES, Catalog, OutputDir, environment_offline, load_catalog

LOCAL = "127.0.0.1"


def _gradio() -> Any:
    environment_offline()
    try:
        import gradio
    except ImportError:
        raise GancvError("gancv serve needs Gradio: pip install 'gancv[web]'") from None
    return gradio


@dataclass
class Server:
    """A running app; ``close()`` stops it and removes its output files."""

    app: Any
    url: str
    outputs: OutputDir
    catalog: Catalog

    def close(self) -> None:
        try:
            self.app.close()
        finally:
            self.outputs.cleanup()

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def host_warning(host: str) -> str | None:
    if host in (LOCAL, "localhost", "::1"):
        return None
    return (f"warning: serving on {host}: anyone who can reach this machine can use the app and its models; "
            "gancv serve has no login. Use 127.0.0.1 unless you mean it.")


def free_port(host: str = LOCAL) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, timeout_s: float = 120.0) -> None:
    """Poll ``url`` until it answers 200; a loaded machine can take many seconds to serve the first page.

    Gradio's own check gives up after one 3 s timeout (and then says "localhost is not
    accessible"), which a busy 2-core machine hits; this one backs off up to ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    wait, last = 0.05, ""
    while True:
        try:
            with urllib.request.urlopen(url, timeout=max(1.0, min(30.0, deadline - time.monotonic()))) as resp:
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except (urllib.error.URLError, OSError) as exc:  # refused, reset or timed out: not up yet
            last = str(getattr(exc, "reason", exc))
        if time.monotonic() + wait > deadline:
            raise GancvError(f"the web app at {url} did not answer within {timeout_s:.0f} s ({last}); "
                             "the machine may be overloaded, try again or pick another --port")
        time.sleep(wait)
        wait = min(1.0, wait * 2)


def call_api(url: str, api_name: str, data: list[Any], timeout_s: float = 60.0) -> dict[str, Any]:
    """One request through Gradio's HTTP call API (POST, then read the server-sent result), plain
    urllib: -> {"event": "complete" | "error" | ..., "data": outputs}."""
    import json

    body = json.dumps({"data": data}).encode()
    req = urllib.request.Request(f"{url}gradio_api/call/{api_name}", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        event = json.loads(resp.read())["event_id"]
    with urllib.request.urlopen(f"{url}gradio_api/call/{api_name}/{event}", timeout=timeout_s) as resp:
        lines = resp.read().decode().splitlines()
    kind = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("event:")), "")
    payload = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("data:")), "null")
    return {"event": kind, "data": json.loads(payload)}


def _launch_options(gr: Any, launch: Callable[..., Any]) -> dict[str, Any]:
    options: dict[str, Any] = dict(
        prevent_thread_lock=True, quiet=True, share=False, max_file_size=MAX_UPLOAD_BYTES, show_error=True,
        ssr_mode=False, footer_links=[], mcp_server=False, enable_monitoring=False,
        theme=gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["monospace"]))
    # Gradio's built-in reachability probe is what fails under load; wait_ready replaces it.
    if "_frontend" in inspect.signature(launch).parameters:
        options["_frontend"] = False
    return options


def start(runs: list[Path], host: str = LOCAL, port: int = 7860, device: str = "cpu", refresh_s: float = 2.0,
          warn: Callable[[str], None] | None = None, ready_timeout_s: float = 120.0, warm: bool = True) -> Server:
    """Load the models and start serving in a background thread; returns once the app answers.

    ``port=0`` picks a free port (retrying if another process takes it first). ``warm`` sends
    one Generate request with the tab's defaults through the running app before returning, so
    the one-off costs of a first call (oneDNN primitive creation for that batch shape, allocator
    growth, lazy imports in the watermark coder and in Gradio's request path) are paid at
    start-up, not on the user's first click.
    """
    gr = _gradio()
    message = host_warning(host)
    if message and warn is not None:
        warn(message)
    catalog = load_catalog(list(runs), device=device)
    from .app import build_app

    outputs = OutputDir()
    try:
        app = build_app(catalog, outputs, refresh_s=refresh_s)
        app.queue(default_concurrency_limit=2, max_size=64)  # bounded: a flood of requests waits or is refused
        options = _launch_options(gr, app.launch)
        for attempt in range(5 if port == 0 else 1):
            try:
                _, url, _ = app.launch(server_name=host, server_port=port or free_port(host),
                                       allowed_paths=[str(outputs.path)], **options)
                break
            except OSError as exc:  # the port was taken between choosing and binding it
                if port != 0 or attempt == 4:
                    raise GancvError(f"cannot serve on {host}:{port or 'a free port'} ({exc}); pick another --port") from None
        url = url.rstrip("/") + "/" if url else f"http://{host}:{port}/"
        try:
            wait_ready(url, ready_timeout_s)
            if warm and catalog.generators():
                # One request through the whole serving path (queue, pre/post-processing, file
                # cache) before anyone else's: Gradio's first request costs ~2x a later one.
                from .app import ALL_CLASSES, DEFAULT_COUNT

                call_api(url, "generate", [catalog.generators()[0], 0, ALL_CLASSES, 0, DEFAULT_COUNT], ready_timeout_s)
        except (GancvError, OSError):
            app.close()
            raise
    except BaseException:
        outputs.cleanup()
        raise
    return Server(app, url, outputs, catalog)
