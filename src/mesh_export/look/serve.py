"""Serve a directory of precomputed layers over HTTP on localhost, as Neuroglancer needs it:
CORS headers (the viewer is another origin) and byte ranges (sharded files are read by range,
which ``python -m http.server`` ignores)."""

from __future__ import annotations

import os
import re
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class _LayersHandler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Small responses on a kept-alive connection: without this each waits ~40 ms (Nagle).
    disable_nagle_algorithm = True

    def end_headers(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Headers", "Range")
        self.send_header("Access-Control-Expose-Headers", "Content-Length, Content-Range")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def do_OPTIONS(self) -> None:  # the viewer's preflight for a Range request
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        path = Path(self.translate_path(self.path))
        match = _RANGE.match(self.headers.get("Range", "").strip())
        if not match or not path.is_file():
            return super().do_GET()
        size = path.stat().st_size
        first, last = match.groups()
        if first == "":  # the last N bytes
            start, end = max(size - int(last or 0), 0), size - 1
        else:
            start, end = int(first), min(int(last) if last else size - 1, size - 1)
        if start >= size or start > end:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        with open(path, "rb") as handle:
            handle.seek(start)
            body = handle.read(end - start + 1)
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def guess_type(self, path) -> str:
        # Layer files have no extensions (``info``, ids, ``0_0_0``): name them what they are.
        return "application/json" if os.path.basename(str(path)) == "info" else "application/octet-stream"

    def log_message(self, format, *args) -> None:  # quiet: the CLI prints the state, not each request
        if os.environ.get("NG_DEBUG"):
            super().log_message(format, *args)


def layers_server(directory: str | os.PathLike, port: int = 0, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """An HTTP server (not yet serving: call ``serve_forever``) for ``directory`` on ``host`` at
    ``/<directory's name>/``; ``port`` 0 picks a free one (``server.server_address``;
    ``server.base_url``: where the layers are). Served below a folder of its own, the layers'
    links to their neighbours (``../segment_properties``) stay inside what is served: a viewer
    refuses a relative path above a server's root."""
    directory = os.path.abspath(os.fspath(directory))
    prefix = "/" + quote(os.path.basename(directory.rstrip(os.sep)) or "layers") + "/"

    class Handler(_LayersHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=directory, **kwargs)

        def send_head(self):
            if not self.path.startswith(prefix):  # nothing outside the layers' folder
                self.send_error(404)
                return None
            return super().send_head()

        def do_GET(self) -> None:
            if not self.path.startswith(prefix):
                self.send_error(404)
                return
            super().do_GET()

        def translate_path(self, path: str) -> str:
            return super().translate_path("/" + path[len(prefix):] if path.startswith(prefix) else path)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    bound_host, bound_port = server.server_address[:2]
    server.base_url = f"http://{bound_host}:{bound_port}{prefix.rstrip('/')}"
    return server
