"""The registry's page in a real browser: Debian's Chromium (driven by playwright-core from
npm, no browser download) logs in through the hub and uploads two files from the page,
against the registry tests' real platform. The page sends the chunks to the registry's
data endpoint (a cross-origin fetch with a ticket from the API); the version's bytes are
then checked through the API. Where the browser cannot reach the data endpoint (every
request to another port than the hub's fails, by playwright's request routing) the page
sends the chunks through the API instead. A screenshot is saved under $FLIGHTBASE_TEST_ARTIFACTS/registry/
(default: test-artifacts/registry/)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.helpers import browser

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("FLIGHTBASE_TEST_ARTIFACTS") or ROOT / "test-artifacts") / "registry"

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("reachable", [True, False], ids=["data-endpoint", "data-endpoint-unreachable"])
def test_a_member_uploads_files_from_the_page(platform, world, tmp_path, reachable):
    chromium = browser.chromium()
    name, password = f"web{world.workspace[-6:]}", "a-long-registry-password-7"
    platform.sign_up(name, password)
    assert platform.api("jobqueue", "PUT", f"workspaces/{world.workspace}/members/{name}",
                        platform.admin_token).status_code == 200
    files = {"big.bin": os.urandom(40 * 1024 * 1024 + 5), "labels.csv": b"a,1\nb,2\n"}  # two page chunks, and a small one
    for filename, data in files.items():
        (tmp_path / filename).write_bytes(data)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "BASE": platform.url, "FB_USER": name, "FB_PASSWORD": password, "FB_WORKSPACE": world.workspace,
           "FB_FILES": ":".join(str(tmp_path / f) for f in files), "FB_DATASET": "browser",
           "ARTIFACTS": str(ARTIFACTS), "CHROMIUM": chromium}
    if not reachable:
        env.update(FB_BLOCK_DATA="1", FB_DATASET="blocked")
    proc = subprocess.run(["node", str(Path(__file__).with_name("browser_upload.mjs"))], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    print(proc.stdout)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}\n--- platform log\n{platform.log_tail()}"
    dataset = env["FB_DATASET"]
    assert f"status: version 1 of {dataset}: 2 files" in proc.stdout

    chunks = [line.split()[2] for line in proc.stdout.splitlines() if line.startswith("chunk: PATCH")]
    hub_port = urlsplit(platform.url).port
    if reachable:
        assert len(chunks) == 3 and hub_port not in {urlsplit(u).port for u in chunks}, chunks
    else:  # one try at the data endpoint, then every chunk through the hub's proxy
        assert urlsplit(chunks[0]).port != hub_port, chunks
        assert [urlsplit(u).port for u in chunks[1:]] == [hub_port] * 3, chunks
        assert all("/services/registry/api/v1/" in u for u in chunks[1:])
    token = world.tokens["member"]
    for filename, data in files.items():
        got = platform.api("registry", "GET", f"workspaces/{world.workspace}/datasets/{dataset}/versions/1/files/{filename}", token)
        assert got.status_code == 200 and hashlib.sha256(got.content).digest() == hashlib.sha256(data).digest()
