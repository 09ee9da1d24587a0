"""Start and stop a real Flightbase platform (hub, proxy, both services) for tests.

Nothing is mocked: ``flightbase up`` runs as a subprocess on free ports with a
temporary data directory, exactly as ``make run`` starts it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from flightbase_server.platform import free_port  # noqa: F401 (tests and benchmarks import it from here)
from tests.helpers import running

ROOT = Path(__file__).resolve().parents[2]
FLIGHTBASE = Path(sys.executable).parent / "flightbase"


@dataclass
class Platform:
    data_dir: Path
    port: int
    admin_token: str
    admin_password: str
    extra_env: dict = field(default_factory=dict)
    gpus: str = "4"
    policy: str | None = None  # `flightbase up --policy` (None: the platform's default)
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> "Platform":
        running.require_slow("starts the platform")
        env = dict(os.environ)
        env.update(
            FLIGHTBASE_ADMIN_TOKEN=self.admin_token,
            FLIGHTBASE_ADMIN_PASSWORD=self.admin_password,
            FLIGHTBASE_AUTH_CACHE_SECONDS="0",
            # work runs as local processes unless a test asks for containers (tests/containers/)
            FLIGHTBASE_BACKEND="local",
            # each test platform has an OCI registry of its own: copying the built-in images
            # (3 GB) into each is for the one test of it (tests/containers/test_publish.py)
            FLIGHTBASE_REGISTRY_PUBLISH_BUILTIN_IMAGES="0",
        )
        env.update(self.extra_env)
        self.log_path = self.data_dir.parent / "platform.log"
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(FLIGHTBASE), "up", "--port", str(self.port), "--data-dir", str(self.data_dir), "--gpus", self.gpus,
             *(["--policy", self.policy] if self.policy else [])],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        pending = {"jobqueue", "registry"}
        while pending:
            if self.proc.poll() is not None:
                raise RuntimeError(f"platform exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"platform not healthy after {timeout}s:\n{self.log_tail()}")
            for name in list(pending):
                try:
                    if httpx.get(f"{self.url}/services/{name}/health", timeout=2).status_code == 200:
                        pending.discard(name)
                except httpx.HTTPError:
                    pass
            time.sleep(0.3)
        return self

    def stop(self, timeout: float = 30) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        # the hub stops its proxy and services; make sure nothing of the group is left
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def kill_jobs(self) -> None:
        """Kill the jobs this platform started. Jobs outlive the services by design (a
        restarted jobqueue re-attaches to them); a test platform that goes away for good
        must not leave them behind."""
        root = str(self.data_dir)
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                cwd = os.readlink(f"/proc/{entry}/cwd")
                cmd = open(f"/proc/{entry}/cmdline", "rb").read().decode(errors="replace")
            except OSError:
                continue
            if cwd.startswith(root) or root in cmd:
                try:
                    os.kill(int(entry), signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def service_pid(self, name: str) -> int:
        """The pid of this platform's service ``name`` (jobqueue, registry): the hub starts each as
        ``python -m flightbase_<name>`` with this platform's data directory in its environment
        (other platforms may run beside it)."""
        module = f"flightbase_{name}".encode()
        mark = f"FLIGHTBASE_DATA_DIR={self.data_dir}".encode()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                argv = open(f"/proc/{entry}/cmdline", "rb").read().split(b"\0")
                environ = open(f"/proc/{entry}/environ", "rb").read().split(b"\0")
            except OSError:
                continue
            if b"-m" in argv and module in argv and mark in environ:
                return int(entry)
        raise AssertionError(f"no {name} process of this platform")

    def wait_healthy(self, name: str = "jobqueue", timeout: float = 30) -> None:
        """Until the service answers its health check (after a restart of it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/services/{name}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"{name} did not come back")

    def remove(self) -> None:
        """Stop, kill its jobs, and delete the data directory (keep it with FLIGHTBASE_KEEP_TEST_DATA=1)."""
        self.stop()
        self.kill_jobs()
        if not os.environ.get("FLIGHTBASE_KEEP_TEST_DATA"):
            shutil.rmtree(self.data_dir.parent, ignore_errors=True)

    def log_tail(self, n: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-n:] if self.log_path and self.log_path.exists() else ""

    # --- helpers over the real APIs
    def hub(self, method: str, path: str, token: str | None = None, **kw) -> httpx.Response:
        headers = {"Authorization": f"token {token or self.admin_token}"}
        return httpx.request(method, f"{self.url}/hub/api/{path.lstrip('/')}", headers=headers, timeout=30, **kw)

    def api(self, service: str, method: str, path: str, token: str | None = None, **kw) -> httpx.Response:
        headers = kw.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"token {token}"
        return httpx.request(
            method, f"{self.url}/services/{service}/api/v1/{path.lstrip('/')}", headers=headers, timeout=30, **kw
        )

    def sign_up(self, name: str, password: str) -> None:
        """A person with a password, as in the browser: they sign up, the administrator approves."""
        self.hub("POST", f"users/{name}")
        with httpx.Client(base_url=self.url, follow_redirects=True, timeout=30) as anon:
            form(anon, "/hub/signup", {"username": name, "signup_password": password,
                                       "signup_password_confirmation": password})
        with httpx.Client(base_url=self.url, follow_redirects=True, timeout=30) as admin:
            form(admin, "/hub/login", {"username": "admin", "password": self.admin_password})
            assert admin.get(f"/hub/authorize/{name}").status_code == 200

    def create_user(self, name: str) -> str:
        """Create a hub user (as an administrator would) and return an API token for them."""
        resp = self.hub("POST", f"users/{name}")
        assert resp.status_code in (201, 409), resp.text
        token = self.hub("POST", f"users/{name}/tokens", json={"note": "test"})
        assert token.status_code == 201, token.text
        return token.json()["token"]


def form(client: httpx.Client, url: str, data: dict) -> httpx.Response:
    """Post a hub form as a browser does: get the page first for its _xsrf cookie, then send it back."""
    client.get(url)
    return client.post(url, data={**data, "_xsrf": client.cookies.get("_xsrf")})


def new_platform(tmp: Path, **kw) -> Platform:
    # Jobs and notebooks run as unprivileged accounts, which cannot pass through pytest's
    # private (mode 0700) temp folder: the data directory lives in a traversable one.
    base = Path(tempfile.mkdtemp(prefix="flightbase-test-"))
    base.chmod(0o711)
    return Platform(
        data_dir=base / "data",
        port=free_port(),
        admin_token=secrets.token_hex(16),
        admin_password=secrets.token_hex(12),
        **kw,
    )
