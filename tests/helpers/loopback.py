"""A small HTTP server on loopback that answers GET with JSON: the stand-in for the hub's
REST API in unit tests that exercise a real HTTP client (the whole path through the real
hub is covered by the platform tests)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


class JsonServer:
    """``GET path``: ``answer(path)`` as JSON with 200, or 404 when it returns None, after
    ``delay`` seconds; ``seen`` records (path, headers) of every request."""

    def __init__(self, answer: Callable[[str], object], delay: float = 0.0):
        self.seen: list[tuple[str, dict]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.seen.append((self.path, dict(self.headers)))
                time.sleep(delay)
                found = answer(self.path)
                if found is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.dumps(found).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def paths(self) -> list[str]:
        return [path for path, _ in self.seen]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
