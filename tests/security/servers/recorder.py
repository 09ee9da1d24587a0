"""A stand-in for a person's single-user server that writes down every request it gets.

It does what a hostile notebook could: log the headers of everything that reaches it.
Started by the spawner instead of jupyterhub-singleuser (tests/security/test_tokens.py), it
listens where the hub says (``JUPYTERHUB_SERVICE_URL``), answers every request with an
empty JSON list (what ``/api/kernels`` of an idle server answers), and appends
``{"path", "authorization"}`` lines to ``requests.jsonl`` in its working directory.
"""
import json
import os
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import urlsplit


class Recorder(BaseHTTPRequestHandler):
    def do_GET(self):
        with open("requests.jsonl", "a") as f:
            f.write(json.dumps({"path": self.path, "authorization": self.headers.get("Authorization", "")}) + "\n")
        body = b"[]"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def log_message(self, *args):
        pass


url = urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"])
HTTPServer((url.hostname, url.port), Recorder).serve_forever()
