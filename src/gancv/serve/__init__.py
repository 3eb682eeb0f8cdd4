"""``gancv serve``: a local web app for trained models and live runs (Gradio)."""
from __future__ import annotations

import socket
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


def start(runs: list[Path], host: str = LOCAL, port: int = 7860, device: str = "cpu", refresh_s: float = 2.0,
          warn: Callable[[str], None] | None = None) -> Server:
    """Load the models and start serving in a background thread; returns once the app answers."""
    gr = _gradio()
    message = host_warning(host)
    if message and warn is not None:
        warn(message)
    catalog = load_catalog(list(runs), device=device)
    from .app import build_app

    outputs = OutputDir()
    app = build_app(catalog, outputs, refresh_s=refresh_s)
    app.queue(default_concurrency_limit=2, max_size=64)  # bounded: a flood of requests waits or is refused
    try:
        _, url, _ = app.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=True,
                               share=False, max_file_size=MAX_UPLOAD_BYTES, show_error=True, ssr_mode=False,
                               allowed_paths=[str(outputs.path)], footer_links=[], mcp_server=False,
                               enable_monitoring=False, theme=gr.themes.Default(font=["system-ui", "sans-serif"],
                                                                               font_mono=["monospace"]))
    except OSError as exc:
        outputs.cleanup()
        raise GancvError(f"cannot serve on {host}:{port} ({exc}); pick another --port") from None
    return Server(app, url.rstrip("/") + "/" if url else f"http://{host}:{port}/", outputs, catalog)
