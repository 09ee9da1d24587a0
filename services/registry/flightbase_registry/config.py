"""The registry service's own settings, read once at start-up.

Each setting comes from a ``FLIGHTBASE_*`` environment variable or, where the
hub does not pass that variable through to its services, from the optional
JSON file ``<data_dir>/registry.json`` (keys are the field names below). The
environment wins over the file. Sizes are bytes unless the name says GB.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields
from pathlib import Path

GB = 1_000_000_000


@dataclass(frozen=True)
class RegistrySettings:
    # Where uploaded images are pushed, e.g. http://127.0.0.1:5000. Empty: image
    # uploads answer 503 (registering an image by reference still works).
    oci_registry_url: str = ""
    # Largest single file (or image archive) one upload may declare.
    max_file_bytes: int = 100 * GB
    # Most files one upload (one dataset version) may hold, archives' members included.
    max_files: int = 100_000
    # Most bytes an archive may expand to, and the largest expansion ratio of one
    # compressed member (zip bombs expand a thousandfold and more).
    max_extract_bytes: int = 200 * GB
    max_compression_ratio: int = 200
    # How many bytes a chunk request (PATCH) may carry at most.
    max_chunk_bytes: int = 1 * GB
    # 1: write received chunks with O_DIRECT where the file system allows it (no
    # page cache; see api/uploads.py); 0: always through the page cache.
    direct_writes: int = 1
    # The public base URL of the data endpoint (direct.py), when clients reach it by
    # another name than http://<the host they reach the hub by>:<registry_data_port>,
    # e.g. https://data.flightbase.example.org behind a TLS terminator.
    data_url: str = ""

    ENV = {
        "oci_registry_url": "FLIGHTBASE_OCI_REGISTRY_URL",
        "max_file_bytes": "FLIGHTBASE_REGISTRY_MAX_FILE_BYTES",
        "max_files": "FLIGHTBASE_REGISTRY_MAX_FILES",
        "max_extract_bytes": "FLIGHTBASE_REGISTRY_MAX_EXTRACT_BYTES",
        "max_compression_ratio": "FLIGHTBASE_REGISTRY_MAX_COMPRESSION_RATIO",
        "max_chunk_bytes": "FLIGHTBASE_REGISTRY_MAX_CHUNK_BYTES",
        "direct_writes": "FLIGHTBASE_REGISTRY_DIRECT_WRITES",
        "data_url": "FLIGHTBASE_REGISTRY_DATA_URL",
    }

    @classmethod
    def load(cls, data_dir: Path, environ: dict[str, str] | None = None) -> "RegistrySettings":
        environ = os.environ if environ is None else environ
        raw: dict = {}
        path = Path(data_dir) / "registry.json"
        if path.exists():
            try:
                raw.update(json.loads(path.read_text()))
            except (OSError, ValueError) as exc:
                raise RuntimeError(f"{path}: not a JSON object of registry settings ({exc})") from None
        for name, var in cls.ENV.items():
            if environ.get(var) not in (None, ""):
                raw[name] = environ[var]
        known = {f.name: f for f in fields(cls)}
        unknown = set(raw) - set(known)
        if unknown:
            raise RuntimeError(f"{path}: unknown registry settings {sorted(unknown)}")
        kwargs = {}
        for name, value in raw.items():
            try:
                kwargs[name] = str(value).rstrip("/") if known[name].type == "str" else int(value)
            except ValueError:
                raise RuntimeError(f"registry setting {name}: {value!r} is not a whole number") from None
        return cls(**kwargs)
