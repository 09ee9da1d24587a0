"""A real PostgreSQL server for tests: initdb into a temp dir, sockets only, stopped after."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from .harness import free_port


def _bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for version_dir in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (version_dir / name).exists():
            return str(version_dir / name)
    raise RuntimeError(f"{name} not found: install PostgreSQL (`make test` runs scripts/system-deps.sh test)")


class PostgresServer:
    def __init__(self, base: Path | None = None):
        # the server runs as the unprivileged `postgres` account when we are root, so
        # its directory must not sit below pytest's private (mode 0700) temp folder
        self.base = base or Path(tempfile.mkdtemp(prefix="flightbase-pg-"))
        self.data = self.base / "pgdata"
        self.sockets = self.base / "sockets"
        self.port = free_port()
        self.user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name

    def _run(self, *argv: str) -> subprocess.CompletedProcess:
        if os.geteuid() == 0:
            argv = ("runuser", "-u", self.user, "--", *argv)
        return subprocess.run(argv, check=True, capture_output=True, text=True)

    def start(self) -> "PostgresServer":
        self.base.mkdir(parents=True, exist_ok=True)
        self.sockets.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            entry = pwd.getpwnam(self.user)
            os.chmod(self.base, 0o755)
            for path in (self.base, self.sockets):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._run(_bin("initdb"), "-D", str(self.data), "--auth=trust", "-U", self.user, "--no-sync")
        options = f"-c listen_addresses='' -c unix_socket_directories={self.sockets} -p {self.port} -c fsync=off"
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-w", "-l", str(self.base / "pg.log"), "start")
        return self

    def create_database(self, name: str) -> str:
        self._run(_bin("createdb"), "-h", str(self.sockets), "-p", str(self.port), "-U", self.user, name)
        return f"postgresql://{self.user}@/{name}?host={self.sockets}&port={self.port}"

    def stop(self) -> None:
        try:
            self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.base, ignore_errors=True)
