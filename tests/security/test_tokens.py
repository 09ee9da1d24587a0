"""Issue #14, finding 2: the platform's credentials never reach people's servers.

The jobqueue's idle check once called each notebook's ``/api/kernels`` with the
jobqueue's own hub token, which held ``admin:users`` and ``access:servers``: a
notebook that logged its request headers became a hub administrator. Here the
notebook is a server that does exactly that (``servers/recorder.py``, started by the
real spawner in place of JupyterLab), in a workspace whose idle timeout makes the
real jobqueue check it and stop it. Every token it recorded must be one that reaches
that one server and nothing else; and each service's own token holds only the hub
scopes it uses.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import httpx
import pytest

from tests.helpers.platforms import running_platform
from tests.helpers.servers import spawn, wait_gone, wait_ready

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="servers run as their owners' accounts only under root")]

RECORDER = Path(__file__).parent / "servers" / "recorder.py"


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("security-tokens")
    extra = tmp / "extra_config.py"
    # the recorder is started by the real spawner, as the person, in ~/<workspace>
    extra.write_text(f"c.FlightbaseLocalSpawner.cmd = [{sys.executable!r}, {str(RECORDER)!r}]\n")
    extra.chmod(0o644)
    with running_platform(tmp_path_factory, "security-tokens-platform", gpus="2",
                          extra_env={"FLIGHTBASE_LEASE_CHECK_SECONDS": "1",
                                     "FLIGHTBASE_SPAWNER_POLL_SECONDS": "2",
                                     "FLIGHTBASE_HUB_EXTRA_CONFIG": str(extra)}) as p:
        p.tokens = {"ann": p.create_user("ann")}
        yield p


def service_tokens(platform) -> dict[str, str]:
    secrets = json.loads((platform.data_dir / "secrets.json").read_text())
    return {"jobqueue": secrets["jobqueue_token"], "registry": secrets["registry_token"]}


def whoami(platform, token: str) -> httpx.Response:
    return httpx.get(f"{platform.url}/hub/api/user", headers={"Authorization": f"token {token}"}, timeout=30)


def test_finding2_the_idle_check_sends_a_server_only_a_token_for_itself(platform):
    admin = platform.admin_token
    assert platform.api("jobqueue", "POST", "workspaces", admin,
                        json={"name": "tok", "settings": {"idle_timeout_minutes": 0.1}}).status_code == 201
    assert platform.api("jobqueue", "PUT", "workspaces/tok/members/ann", admin).status_code == 200
    spawn(platform, "ann", "nb", workspace="tok", gpus=1)
    wait_ready(platform, "ann", "nb", timeout=90)
    wait_gone(platform, "ann", "nb", timeout=90)  # judged idle and stopped by the jobqueue

    log = Path(f"{platform.data_dir}/home/ann/tok/requests.jsonl")
    seen = [json.loads(line) for line in log.read_text().splitlines()]
    checks = [r for r in seen if r["path"].split("?")[0].endswith("/api/kernels")]
    assert checks, seen  # the idle check did reach the server: there is something to judge
    services = service_tokens(platform)
    for request in seen:
        scheme, _, token = request["authorization"].partition(" ")
        if not token:
            continue
        leaked = token in services.values() or token == admin  # (a bool: a failure must not print the token)
        assert not leaked, f"a platform token reached the server, on {request['path']}"
        model = whoami(platform, token)
        if model.status_code in (401, 403):  # deleted with the lease: it was only ever for that server
            continue
        model = model.json()
        assert model["kind"] == "user" and model["name"] == "ann", model
        assert not [s for s in model["scopes"] if s.startswith(("admin", "servers", "tokens", "users", "groups"))
                    or s == "access:servers"], model["scopes"]
    # and once the server stopped, its token went with the lease
    token = checks[-1]["authorization"].partition(" ")[2]
    assert whoami(platform, token).status_code in (401, 403)


def test_finding2_each_service_holds_only_the_hub_scopes_it_uses(platform):
    jobqueue = whoami(platform, service_tokens(platform)["jobqueue"]).json()
    registry = whoami(platform, service_tokens(platform)["registry"]).json()
    for model in (jobqueue, registry):
        assert model["kind"] == "service"
        assert not {"admin:users", "access:servers", "tokens", "admin:servers", "admin-ui"} & set(model["scopes"]), model
    assert not [s for s in registry["scopes"] if s.startswith("admin") or s in ("groups", "servers")], registry
    # what the jobqueue needs to do its work is still there
    assert {"admin:groups", "groups", "servers", "read:servers"} <= set(jobqueue["scopes"]), jobqueue
