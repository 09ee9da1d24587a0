"""The registry's page in a real browser, in the hub's look: Debian's Chromium (playwright-core
from npm, no browser download) logs in through the hub as a member, opens the page from the hub's
nav bar, and checks what it shows against the API: only the member's workspace, the datasets and
a dataset's versions, the storage used; it registers an image and uploads an image archive from
the page (cookie-authenticated POSTs carrying the page's XSRF token), and follows the hub's dark mode. Screenshots (light, dark)
go to $FLIGHTBASE_TEST_ARTIFACTS/registry/ (default: test-artifacts/registry/, gitignored)."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal
import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import browser
from tests.helpers.dataset_uploads import upload_version
from tests.registry.images import docker_save

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("FLIGHTBASE_TEST_ARTIFACTS") or ROOT / "test-artifacts") / "registry"

pytestmark = pytest.mark.slow


def human(n: int) -> str:
    """Bytes as registry.js shows them (JavaScript's toFixed rounds the exact value, ties up)."""
    def fixed(x: float, places: int) -> str:
        return str(Decimal(x).quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP))

    if n > 1e9:
        return f"{fixed(n / 1e9, 2)} GB"
    if n > 1e6:
        return f"{fixed(n / 1e6, 1)} MB"
    return f"{fixed(n / 1e3, 1)} kB" if n > 1e4 else f"{n} B"


def test_a_member_sees_the_page_in_the_hubs_look(platform, world, tmp_path):
    chromium = browser.chromium()
    name, password = f"look{world.workspace[-6:]}", "a-long-registry-password-8"
    platform.sign_up(name, password)
    assert platform.api("jobqueue", "PUT", f"workspaces/{world.workspace}/members/{name}",
                        platform.admin_token).status_code == 200
    token = world.tokens["member"]
    for files in ({"a.csv": b"x,y\n1,2\n"}, {"a.csv": b"x,y\n1,2\n3,4\n", "b.txt": b"hello\n"}):
        v = upload_version(platform, token, world.workspace, world.dataset, files)
        assert v.status_code == 201, v.text
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    image = f"img{world.workspace[-6:]}"
    archive = tmp_path / "image.tar"
    archive.write_bytes(docker_save({"ai.flightbase.frameworks": "pytorch"}))
    env = {**os.environ, "BASE": platform.url, "FB_USER": name, "FB_PASSWORD": password, "FB_WORKSPACE": world.workspace,
           "FB_DATASET": world.dataset, "FB_IMAGE": image, "FB_ARCHIVE": str(archive), "ARTIFACTS": str(ARTIFACTS), "CHROMIUM": chromium}
    proc = subprocess.run(["node", str(Path(__file__).with_name("registry_page.mjs"))], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    print(proc.stdout)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}\n--- platform log\n{platform.log_tail()}"
    seen = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("observed: "))[len("observed: "):])

    assert seen["url"].startswith(f"{platform.url}/services/registry/"), seen["url"]
    assert seen["title"] == "Datasets and images · Flightbase"
    assert seen["workspaces"] == [world.workspace]  # only theirs
    assert seen["nav"] == ["Dashboard", "Datasets and images"]  # no Administration for a member
    assert ["Dashboard", "/services/jobqueue/dashboard/"] in seen["links"]
    assert not any(label == "Administration" for label, _ in seen["links"])
    assert seen["bootstrap"]["navbar"] == "flex" and seen["bootstrap"]["card"] not in ("", "0px")
    assert seen["errors"] == [], seen["errors"]

    # the figures shown are the API's
    api = {d["name"]: d for d in platform.api("registry", "GET", f"workspaces/{world.workspace}/datasets", token).json()}
    assert {row[0] for row in seen["datasets"]} == set(api)
    row = next(r for r in seen["datasets"] if r[0] == world.dataset)
    assert row[1:3] == [f"v{api[world.dataset]['latest_version']}", str(api[world.dataset]["versions"])] == ["v2", "2"]
    assert seen["versions"] == [["v2", "2"], ["v1", "1"]]
    storage = platform.api("registry", "GET", f"workspaces/{world.workspace}/storage", token).json()
    # before the image upload: the datasets' bytes; on the last load: those and the image's
    assert seen["usage"] == f"{human(storage['datasets_bytes'])} used (no quota)", (seen["usage"], storage)
    assert storage["images_bytes"] > 0 and seen["usage_end"] == f"{human(storage['used_bytes'])} used (no quota)", (seen, storage)

    # the image registered from the page exists, added by the person
    assert seen["image_status"].startswith(f"registered {image}"), seen["image_status"]
    got = platform.api("registry", "GET", f"workspaces/{world.workspace}/images/{image}", token)
    assert got.status_code == 200 and got.json()["created_by"] == name, got.text

    # and the archive uploaded from the page was pushed to the platform's OCI registry
    assert seen["archive_status"].startswith(f"uploaded {image}-up: "), seen["archive_status"]
    up = platform.api("registry", "GET", f"workspaces/{world.workspace}/images/{image}-up", token).json()
    assert up["source"] == "upload" and up["tag"] == "v1" and up["frameworks"] == ["pytorch"], up

    # light, then dark as chosen on the hub's page
    assert seen["theme_light"] == "light" and seen["hub_theme"] == "dark" and seen["theme_dark"] == "dark"
    assert seen["body_background"] != "rgb(255, 255, 255)", seen["body_background"]
    for shot in ("registry-page-light.png", "registry-page-dark.png"):
        assert (ARTIFACTS / shot).stat().st_size > 10_000
    print(f"screenshots: {ARTIFACTS}")
