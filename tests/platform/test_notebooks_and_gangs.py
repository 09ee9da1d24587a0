"""Notebooks and gang trainings together, on the real platform (issue 17, part 1).

The scenario as a person tried it on 4 CPU slots: two 2-slot trainings run; a
4-slot training is queued; a notebook asking for one GPU comes later. When the
first training ends, the notebook used to take a freed slot and the 4-slot
training, first in the queue, then waited behind a notebook with no end.
Head-of-line rule 5 (services/jobqueue/flightbase_jobqueue/scheduling/core.py,
docs/scheduling.md): the notebook's lease waits instead, the 4-slot training
starts as soon as the second training ends, and the notebook gets its slot
after it. Everything is real: the hub, its spawner asking for the lease, the
jobqueue with its default policy, jobs as local processes.
"""

from __future__ import annotations

import time
import uuid

import pytest

from tests.helpers.platforms import running_platform
from tests.helpers.scheduler import wait_scheduler_passes

from .world import SLEEPER, submit, upload_code, wait_state

pytestmark = pytest.mark.slow

SHORT = b"import time\nprint('gang step', flush=True)\ntime.sleep(6)\n"


@pytest.fixture(scope="module")
def slots4(tmp_path_factory):
    with running_platform(tmp_path_factory, "gangs", gpus="4",
                          extra_env={"FLIGHTBASE_LEASE_CHECK_SECONDS": "1",
                                     "FLIGHTBASE_SPAWNER_POLL_SECONDS": "2"}) as p:
        yield p
        for server in (p.hub("GET", "users/nbuser").json().get("servers") or {}):
            p.hub("DELETE", f"users/nbuser/servers/{server}")


def _lease(p, token, server):
    found = [x for x in p.api("jobqueue", "GET", "leases", token, params={"all": True}).json()
             if x["server"] == server]
    return found[0] if found else None


def _wait(what, check, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def test_a_notebook_does_not_delay_an_older_gang_training_and_then_gets_its_slot(slots4):
    p = slots4
    token = p.create_user("nbuser")
    ws = f"gang-{uuid.uuid4().hex[:6]}"
    r = p.api("jobqueue", "POST", "workspaces", p.admin_token, json={"name": ws, "settings": {}})
    assert r.status_code == 201, r.text
    assert p.api("jobqueue", "PUT", f"workspaces/{ws}/members/nbuser", p.admin_token).status_code == 200
    sleeper = upload_code(p, token, ws, "sleep.py", SLEEPER)
    short = upload_code(p, token, ws, "gang.py", SHORT)

    # two 2-slot trainings running
    t1, t2 = (submit(p, token, ws, name, "sleep.py", sleeper, gpus=2)["jobs"][0]["id"] for name in ("t1", "t2"))
    for j in (t1, t2):
        wait_state(p, token, f"jobs/{j}", ("running",))
    # a 4-slot training queued first
    big = submit(p, token, ws, "big", "gang.py", short, gpus=4)["jobs"][0]["id"]
    assert p.api("jobqueue", "GET", f"jobs/{big}", token).json()["state"] == "queued"
    # then a notebook asking for one GPU: its spawner asks for a lease, which waits
    r = p.hub("POST", "users/nbuser/servers/nb", json={"workspace": ws, "gpus": 1})
    assert r.status_code in (201, 202), r.text
    lease = _wait("the notebook's lease", lambda: _lease(p, token, "nb"))
    assert lease["state"] == "queued", lease

    # the first training ends: two slots free, but the notebook may not take one
    assert p.api("jobqueue", "POST", f"trainings/{p.api('jobqueue', 'GET', f'jobs/{t1}', token).json()['training_id']}/cancel",
                 token).status_code == 200
    wait_state(p, token, f"jobs/{t1}", ("cancelled",))
    wait_scheduler_passes(p, 3)  # several scheduler passes after the slots freed up
    lease = _lease(p, token, "nb")
    assert lease["state"] == "queued", lease
    assert "training big" in lease["queue"]["reason"], lease["queue"]
    queued = p.api("jobqueue", "GET", f"jobs/{big}", token).json()
    assert queued["state"] == "queued", queued
    assert queued["queue"]["position"] == 1, queued["queue"]
    assert "notebook" not in queued["queue"]["reason"], queued["queue"]  # it waits for t2, not for the notebook

    # the second training ends: the 4-slot training starts at once, the notebook still waits
    t2_training = p.api("jobqueue", "GET", f"jobs/{t2}", token).json()["training_id"]
    assert p.api("jobqueue", "POST", f"trainings/{t2_training}/cancel", token).status_code == 200
    wait_state(p, token, f"jobs/{t2}", ("cancelled",))
    started = wait_state(p, token, f"jobs/{big}", ("running", "succeeded"), timeout=30)
    assert started["started_at"] is not None
    assert _lease(p, token, "nb")["state"] == "queued"

    # the 4-slot training ends: the notebook gets its slot and its server starts
    done = wait_state(p, token, f"jobs/{big}", timeout=60)
    assert done["state"] == "succeeded", done
    granted = _wait("the lease granted", lambda: (x := _lease(p, token, "nb"))["state"] == "granted" and x, 30)
    assert granted["granted_at"] >= done["finished_at"] - 1.0
    assert len(granted["gpus"]) == 1
    _wait("the notebook server ready",
          lambda: (s := (p.hub("GET", "users/nbuser").json()["servers"] or {}).get("nb")) and s["ready"], 90)
    p.hub("DELETE", "users/nbuser/servers/nb")
