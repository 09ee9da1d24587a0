"""The registry service's own settings, read once at start-up.

Each setting comes from a ``FLIGHTBASE_*`` environment variable or, where the
hub does not pass that variable through to its services, from the optional
JSON file ``<data_dir>/registry.json`` (keys are the field names below). The
environment wins over the file. Sizes are bytes unless the name says GB. Each
field is documented in its metadata (``flightbase_server.settings.setting``); the
platform-wide settings the registry reads (data directory, database, backend)
are ``flightbase_server.settings.PlatformSettings``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

from flightbase_server import secrets
from flightbase_server.settings import PlatformSettings, env_name, setting

GB = 1_000_000_000


@dataclass(frozen=True)
class RegistrySettings:
    oci_registry_url: str = setting(
        "", env="FLIGHTBASE_OCI_REGISTRY_URL", services=("registry",),
        help="Where uploaded images are pushed, e.g. http://127.0.0.1:5000. Empty: image uploads answer 503 "
             "(registering an image by reference still works).")
    # A file rather than the value, so that the password is in no process environment. The registry
    # that `flightbase up` starts has its own account, which the service reads from secrets.json
    # (see oci_credentials); these two settings are not for it.
    oci_registry_username: str = setting(
        "", env="FLIGHTBASE_OCI_REGISTRY_USERNAME", services=("registry",),
        help="The account on an operator's OCI registry that requires one (HTTP Basic auth, e.g. distribution "
             "with htpasswd): the user name. Goes with FLIGHTBASE_OCI_REGISTRY_PASSWORD_FILE.")
    oci_registry_password_file: str = setting(
        "", env="FLIGHTBASE_OCI_REGISTRY_PASSWORD_FILE", services=("registry",),
        help="The path of a file holding that account's password (one line; a trailing newline is ignored).")
    max_file_bytes: int = setting(100 * GB, env="FLIGHTBASE_REGISTRY_MAX_FILE_BYTES", services=("registry",),
                                  shown_default="100 GB",
                                  help="Largest single file (or image archive) one upload may declare, in bytes.")
    max_files: int = setting(100_000, env="FLIGHTBASE_REGISTRY_MAX_FILES", services=("registry",),
                             help="Most files one upload (one dataset version) may hold, archives' members included.")
    # zip bombs expand a thousandfold and more
    max_extract_bytes: int = setting(200 * GB, env="FLIGHTBASE_REGISTRY_MAX_EXTRACT_BYTES", services=("registry",),
                                     shown_default="200 GB",
                                     help="Most bytes an uploaded archive may expand to.")
    max_compression_ratio: int = setting(200, env="FLIGHTBASE_REGISTRY_MAX_COMPRESSION_RATIO", services=("registry",),
                                         help="The largest expansion ratio of one compressed archive member.")
    max_chunk_bytes: int = setting(1 * GB, env="FLIGHTBASE_REGISTRY_MAX_CHUNK_BYTES", services=("registry",),
                                   shown_default="1 GB",
                                   help="How many bytes a chunk request (PATCH) may carry at most.")
    direct_writes: int = setting(
        1, env="FLIGHTBASE_REGISTRY_DIRECT_WRITES", services=("registry",),
        help="1: write received chunks with O_DIRECT where the file system allows it (no page cache; see "
             "flightbase_registry/writer.py); 0: always through the page cache.")
    data_url: str = setting(
        "", env="FLIGHTBASE_REGISTRY_DATA_URL", services=("registry",),
        help="The public base URL of the data endpoint (direct.py), when clients reach it by another name than "
             "http://<the host they reach the hub by>:<registry_data_port>, e.g. "
             "https://data.flightbase.example.org behind a TLS terminator.")
    publish_builtin_images: int = setting(
        1, env="FLIGHTBASE_REGISTRY_PUBLISH_BUILTIN_IMAGES", services=("registry",),
        help="1: when work runs in containers on this machine (the docker backend), copy the built-in images into "
             "the OCI registry at start-up, in the background (flightbase_registry/publish.py); 0: keep them in the "
             "Docker engine only.")

    # field name -> environment variable
    ENV: ClassVar[dict[str, str]]

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

    def oci_credentials(self, platform: PlatformSettings) -> tuple[str, str] | None:
        """The (user, password) this service sends to the OCI registry, or None; read once, at start-up.

        The registry ``flightbase up`` starts (``platform.oci_registry_port``) accepts
        only the account in ``<data_dir>/secrets.json``, which this service reads
        itself: it runs as root and already reads the data directory, and the
        password then is in no process environment (an environment is inherited by
        every child a process starts, and the hub keeps its services' environments in
        its configuration), and in no command line. Jobs and notebooks cannot read
        secrets.json (mode 0600, root). An operator's registry uses the
        ``oci_registry_username`` / ``oci_registry_password_file`` settings.
        """
        if "@" in urlsplit(self.oci_registry_url).netloc:  # it would end up in every image reference
            raise RuntimeError("FLIGHTBASE_OCI_REGISTRY_URL: no credentials in the URL; set "
                               "FLIGHTBASE_OCI_REGISTRY_USERNAME and FLIGHTBASE_OCI_REGISTRY_PASSWORD_FILE")
        account = self.oci_registry_username or self.oci_registry_password_file
        if platform.oci_registry_port:
            if account:
                raise RuntimeError(
                    "FLIGHTBASE_OCI_REGISTRY_USERNAME / FLIGHTBASE_OCI_REGISTRY_PASSWORD_FILE are for an operator's "
                    "registry (FLIGHTBASE_OCI_REGISTRY_URL); the registry `flightbase up` starts has its own account")
            try:
                password = secrets.read(platform.data_dir)["oci_registry_password"]
            except (OSError, ValueError, KeyError) as exc:
                raise RuntimeError(f"the embedded OCI registry's password is missing from "
                                   f"{platform.data_dir / 'secrets.json'} ({type(exc).__name__})") from None
            return secrets.OCI_REGISTRY_USER, password
        if not account:
            return None
        if not (self.oci_registry_username and self.oci_registry_password_file):
            raise RuntimeError("registry settings: FLIGHTBASE_OCI_REGISTRY_USERNAME and "
                               "FLIGHTBASE_OCI_REGISTRY_PASSWORD_FILE go together; one of them is empty")
        path = Path(self.oci_registry_password_file)
        try:
            password = path.read_text().rstrip("\r\n")
        except OSError as exc:
            raise RuntimeError(f"FLIGHTBASE_OCI_REGISTRY_PASSWORD_FILE: cannot read {path} ({exc.strerror})") from None
        except UnicodeDecodeError:  # its bytes are not quoted: they are the secret
            raise RuntimeError(f"FLIGHTBASE_OCI_REGISTRY_PASSWORD_FILE: {path} is not UTF-8 text") from None
        if not password:
            raise RuntimeError(f"FLIGHTBASE_OCI_REGISTRY_PASSWORD_FILE: {path} is empty")
        return self.oci_registry_username, password


RegistrySettings.ENV = {f.name: env_name(f) for f in fields(RegistrySettings)}
