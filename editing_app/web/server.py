"""Starting the page: offline, local by default, files only under the session root.

`serve` launches the Blocks of `editing_app.web.page` with
- `share=False` always (no public link), analytics off, no server-side rendering (no Node) and no
  web fonts fetched (the theme names system fonts), so nothing reaches the network;
- the address and users of `AppSettings` (a non-loopback address has been refused without users);
- Gradio's upload folder inside the session root (`GRADIO_TEMP_DIR`, set before Gradio is imported)
  and `max_file_size` at `app.max_upload_mb`, so an oversized upload is refused before it is
  stored; `allowed_paths` is the session root, so only files under it can be served;
- PIL's decompression-bomb warning turned into an error in this process, so an image Gradio itself
  decodes (the mask editor's layers) is refused above the project's pixel limit too.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from editing_app.web.settings import AppSettings

if TYPE_CHECKING:  # gradio is imported only after `prepare_environment`
    import gradio as gr

__all__ = ["prepare_environment", "serve", "upload_root"]


def upload_root(settings: AppSettings) -> Path:
    """Where Gradio stores uploads: a hidden folder of the session root."""
    return settings.session_dir / ".uploads"


def prepare_environment(settings: AppSettings) -> None:
    """Environment Gradio reads at import: its upload folder and no telemetry. Call before
    importing gradio."""
    root = upload_root(settings)
    root.mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(root)
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("GRADIO_SSR_MODE", "False")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("GRADIO_SERVER_NAME", settings.host)
    from PIL import Image

    from editing.io.images import MAX_PIXELS

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    warnings.simplefilter("error", Image.DecompressionBombWarning)


def theme() -> gr.themes.Base:
    """Gradio's default look with system fonts (the default fetches web fonts)."""
    import gradio as gr

    fonts = ["ui-sans-serif", "system-ui", "sans-serif"]
    return gr.themes.Default(font=fonts, font_mono=["ui-monospace", "monospace"])


CSS = """
#photo img { width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated; }
#result img { width: 100%; height: 280px; object-fit: contain; image-rendering: pixelated; }
#gallery img { image-rendering: pixelated; }
"""
"""Small photos (the demo model's 32 px) fill their boxes, with sharp pixels."""


def serve(page: gr.Blocks, settings: AppSettings, block: bool = True) -> tuple[Any, str, Any]:
    """Launch `page` (a `gr.Blocks`); returns what `Blocks.launch` returns (app, local URL, _).
    `block=False` returns at once with the server running in a thread (tests)."""
    page.queue(default_concurrency_limit=1)
    return page.launch(
        server_name=settings.host,
        server_port=settings.port,
        share=False,
        auth=list(settings.auth) or None,
        max_file_size=settings.max_upload_bytes,
        allowed_paths=[str(settings.session_dir)],
        ssr_mode=False,
        mcp_server=False,
        enable_monitoring=False,
        prevent_thread_lock=not block,
        inbrowser=False,
        quiet=True,
        show_error=False,
        theme=theme(),
        css=CSS,
        footer_links=["api"],
    )
