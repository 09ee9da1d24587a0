"""The embedded OCI registry stops when the hub stops it, however the platform was started.

JupyterHub stops a managed service with SIGINT, then SIGTERM 10 s later, then SIGKILL. A process
started with SIGINT ignored passes the ignoring on to what it starts: a shell does that to every
command it runs in the background (``flightbase up &`` in a script), so the hub and the services
it starts had SIGINT ignored. docker-registry (Go) keeps an ignored SIGINT, so the hub's stop waited
for it until the SIGTERM: `flightbase up` took about 30 s to stop. These tests run the service's
own command (``service_specs``), as the hub would with SIGINT ignored, and send it SIGINT.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import httpx
import pytest

from flightbase_server.hub.config import DOCKER_REGISTRY, service_specs
from flightbase_server.secrets import load_or_create
from flightbase_server.settings import PlatformSettings
from tests.platform.harness import free_port

pytestmark = pytest.mark.skipif(not os.path.exists(DOCKER_REGISTRY),
                                reason=f"{DOCKER_REGISTRY} is not installed (apt-get install docker-registry)")


def registry_command(tmp_path) -> tuple[list[str], int]:
    port = free_port()
    settings = PlatformSettings(data_dir=tmp_path, oci_registry_port=port)
    spec, = [s for s in service_specs(settings, load_or_create(tmp_path)) if s["name"] == "oci-registry"]
    return spec["command"], port


def started(command: list[str], port: int) -> subprocess.Popen:
    # as the hub starts it when it was itself started with SIGINT ignored
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, f"the registry exited with {proc.returncode}"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=2).status_code == 401:  # it asks for the account
                return proc
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the registry did not answer"
        time.sleep(0.1)


def test_the_registry_stops_on_the_hubs_sigint_even_when_started_with_sigint_ignored(tmp_path):
    command, port = registry_command(tmp_path)
    proc = started(command, port)
    try:
        proc.send_signal(signal.SIGINT)
        # the hub's own wait before it sends SIGTERM: stopped within it, by the SIGINT
        assert proc.wait(timeout=10) is not None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_bare_registry_would_have_kept_the_hub_waiting(tmp_path):
    """The check above can fail: without `env --default-signal=INT` the same SIGINT does nothing."""
    command, port = registry_command(tmp_path)
    assert command[:2] == ["env", "--default-signal=INT"]
    proc = started(command[2:], port)
    try:
        proc.send_signal(signal.SIGINT)
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=3)
    finally:
        proc.kill()
        proc.wait()
