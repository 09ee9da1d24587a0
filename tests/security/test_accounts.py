"""Issue #14, finding 6: people's code runs only as accounts the platform made, and never as the platform's.

- A hub user named like an account that exists on the machine but was not made
  by Flightbase (``nobody``, uid 65534, or a login someone created by hand) gets
  no job and no server as that account: the real platform, running as root,
  refuses with a message that says why.
- A platform that does not run as root refuses to run anybody's code (it cannot
  switch accounts and never runs it as its own), except in the explicit
  one-person development mode, and then only for that one person: the real
  local backend is run by an unprivileged account here.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import tempfile
import textwrap
import uuid
from pathlib import Path

import pytest

from tests.helpers.platforms import platform_fixture
from tests.platform.world import submit, upload_code, wait_state

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="creating accounts and switching to them needs root")]


def host_account(name: str) -> pwd.struct_passwd:
    """An ordinary login of the machine, made by hand (not by Flightbase)."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", name], check=True, capture_output=True)
        return pwd.getpwnam(name)


platform = platform_fixture("security-accounts", gpus="2")


def test_finding6_a_hub_user_named_like_a_host_account_gets_no_job_as_it(platform):
    host = host_account("fbhostlogin")
    admin = platform.admin_token
    assert platform.api("jobqueue", "POST", "workspaces", admin, json={"name": "acct", "settings": {}}).status_code == 201
    token = platform.create_user(host.pw_name)
    assert platform.api("jobqueue", "PUT", f"workspaces/acct/members/{host.pw_name}", admin).status_code == 200
    marker = Path(tempfile.gettempdir()) / f"fb-ran-{uuid.uuid4().hex}"
    code = upload_code(platform, token, "acct", "touch.py", f"open({str(marker)!r}, 'w').write('ran')\n".encode())
    job = submit(platform, token, "acct", "t", "touch.py", code, gpus=1)["jobs"][0]
    ended = wait_state(platform, token, f"jobs/{job['id']}")
    log = platform.api("jobqueue", "GET", f"jobs/{job['id']}/logs", token).text
    assert ended["state"] == "failed" and "was not created by Flightbase" in log, log
    assert not marker.exists()  # nothing ran as that account


def test_finding6_nobody_gets_no_server(platform):
    assert pwd.getpwnam("nobody").pw_uid >= 1000  # 65534: the old uid floor let it through
    admin = platform.admin_token
    assert platform.api("jobqueue", "POST", "workspaces", admin, json={"name": "acct2", "settings": {}}).status_code == 201
    platform.create_user("nobody")
    assert platform.api("jobqueue", "PUT", "workspaces/acct2/members/nobody", admin).status_code == 200
    resp = platform.hub("POST", "users/nobody/servers/nb", json={"workspace": "acct2", "gpus": 0})
    if resp.status_code == 202:  # the spawn went on in the background: its failure is in the user's model
        import time

        deadline = time.monotonic() + 30
        while platform.hub("GET", "users/nobody").json()["servers"].get("nb", {}).get("pending"):
            assert time.monotonic() < deadline
            time.sleep(0.3)
        assert "nb" not in platform.hub("GET", "users/nobody").json()["servers"]
    else:
        assert resp.status_code == 403 and "not created by Flightbase" in resp.json()["message"], resp.text
    assert not [p for p in os.listdir("/proc") if p.isdigit() and _uid_of(p) == pwd.getpwnam("nobody").pw_uid
                and b"jupyterhub-singleuser" in _cmdline(p)]


def _uid_of(pid: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def _cmdline(pid: str) -> bytes:
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:
        return b""


# The real local backend, started by an unprivileged account: it runs one job for `person`.
NON_ROOT_BACKEND = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from flightbase_server.accounts import AccountPolicy
    from flightbase_jobqueue.backends.local import LocalBackend
    from flightbase_jobqueue.backends.spec import LaunchSpec
    from flightbase_jobqueue.scheduling.types import Job

    data, person, dev = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    code = data / "code"
    code.mkdir(exist_ok=True)
    (code / "whoami.py").write_text("import os; print('RAN AS', os.getuid())")
    spec = LaunchSpec(job_id="j1", training_id="t1", workspace="w", user=person, launcher="none",
                      entrypoint="whoami.py", code_dir=code)
    backend = LocalBackend(data, lambda job_id: spec, gpu_kind="cpu-slot",
                           accounts=AccountPolicy(home_root=str(data / "home"), single_user_dev=dev))
    backend.start(Job(id="j1", workspace="w", gpus=1), {"local": (0,)})
    events = []
    deadline = time.monotonic() + 60
    while not any(type(e).__name__ in ("Exited", "Stopped") for e in events) and time.monotonic() < deadline:
        events += backend.poll_events()
        time.sleep(0.1)
    print(json.dumps({"events": [(type(e).__name__, getattr(e, "exit_code", None)) for e in events],
                      "log": (data / "jobs" / "j1" / "output.log").read_text()}))
""")


def run_backend_as(account: pwd.struct_passwd, person: str, dev: str) -> dict:
    data = Path(tempfile.mkdtemp(prefix="fb-nonroot-"))
    os.chown(data, account.pw_uid, account.pw_gid)
    try:
        out = subprocess.run([sys.executable, "-c", NON_ROOT_BACKEND, str(data), person, dev], user=account.pw_uid,
                             group=account.pw_gid, extra_groups=[], capture_output=True, text=True, timeout=120,
                             cwd="/", env={"PATH": os.environ["PATH"], "HOME": str(data)})
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        subprocess.run(["rm", "-rf", str(data)], check=False)


def test_finding6_without_root_nobodys_code_runs_as_the_platforms_account():
    platform_account = host_account("fbplatformdev")
    refused = run_backend_as(platform_account, "alice", dev="")
    assert refused["events"] == [["Exited", 127]], refused
    assert "not running as root" in refused["log"] and "RAN AS" not in refused["log"], refused["log"]


def test_finding6_the_one_person_development_mode_runs_that_person_only():
    platform_account = host_account("fbplatformdev")
    ran = run_backend_as(platform_account, "alice", dev="alice")
    assert ran["events"][-1] == ["Exited", 0] and f"RAN AS {platform_account.pw_uid}" in ran["log"], ran
    other = run_backend_as(platform_account, "bob", dev="alice")
    assert other["events"] == [["Exited", 127]] and "only 'alice' may run code" in other["log"], other
