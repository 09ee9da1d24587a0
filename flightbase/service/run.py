"""Start a service under uvicorn on the port its settings name."""

from __future__ import annotations

import logging
import os
from urllib.parse import urlparse

import uvicorn

from flightbase.settings import PlatformSettings


def serve(name: str, build) -> None:
    logging.basicConfig(level=logging.INFO, format=f"[%(levelname)1.1s %(asctime)s {name}] %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = PlatformSettings.from_env()
    app = build(settings)
    url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL") or f"http://127.0.0.1:{getattr(settings, name + '_port')}")
    # access_log off: request lines would carry ?token= query strings if a client sent one.
    uvicorn.run(app, host=url.hostname or "127.0.0.1", port=url.port, log_level="info", access_log=False)
