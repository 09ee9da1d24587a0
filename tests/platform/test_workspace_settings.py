"""Workspace settings are validated: bad values get a 4xx naming the field, and
values typed into the hub's admin panel are checked where they are used."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow



@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"gpu_quota": -1}, "gpu_quota", "greater than or equal to 0"),
        ({"gpu_quota": "lots"}, "gpu_quota", "integer"),
        ({"colour": "red"}, "colour", "unknown setting"),
        ({"max_gpus_per_job": 0}, "max_gpus_per_job", "greater than or equal to 1"),
        ({"start_date": "2027-02-01", "end_date": "2027-01-01"}, "end_date", "before start_date"),
        ({"end_date": "tomorrow"}, "end_date", "date"),
    ],
)
def test_bad_settings_are_refused_and_nothing_changes(platform, world, changes, field, words):
    before = platform.api("jobqueue", "GET", f"workspaces/{world.workspace}", platform.admin_token).json()
    resp = platform.api("jobqueue", "PATCH", f"workspaces/{world.workspace}/settings", platform.admin_token, json=changes)
    assert resp.status_code == 422
    body = resp.json()
    assert field in body["errors"], body
    assert words in body["errors"][field]
    after = platform.api("jobqueue", "GET", f"workspaces/{world.workspace}", platform.admin_token).json()
    assert after["settings"] == before["settings"]


def test_create_with_bad_settings_creates_nothing(platform, world):
    resp = platform.api("jobqueue", "POST", "workspaces", platform.admin_token, json={"name": "half", "settings": {"gpu_quota": -2}})
    assert resp.status_code == 422 and "settings.gpu_quota" in resp.json()["errors"]
    assert platform.hub("GET", "groups/half").status_code == 404


def test_bad_workspace_name(platform, world):
    resp = platform.api("jobqueue", "POST", "workspaces", platform.admin_token, json={"name": "Not OK!"})
    assert resp.status_code == 422 and resp.json()["field"] == "name"


def test_manager_may_not_change_admin_settings(platform, world):
    resp = platform.api("jobqueue", "PATCH", f"workspaces/{world.workspace}/settings", world.tokens["manager"], json={"gpu_quota": 100})
    assert resp.status_code == 403 and resp.json()["field"] == "gpu_quota"
    ok = platform.api("jobqueue", "PATCH", f"workspaces/{world.workspace}/settings", world.tokens["manager"], json={"idle_timeout_minutes": 15})
    assert ok.status_code == 200 and ok.json()["settings"]["idle_timeout_minutes"] == 15


def test_admin_panel_strings_are_accepted(platform, world):
    """The admin panel stores what was typed, as strings; they validate like typed values."""
    resp = platform.hub("PUT", f"groups/{world.workspace}/properties", json={"gpu_quota": "6", "managers": "manager-u, owner-u"})
    assert resp.status_code == 200
    ws = platform.api("jobqueue", "GET", f"workspaces/{world.workspace}", platform.admin_token).json()
    assert ws["settings"]["gpu_quota"] == 6
    assert ws["managers"] == ["manager-u", "owner-u"]


def test_bad_value_from_admin_panel_is_reported_not_ignored(platform, world):
    platform.hub("PUT", f"groups/{world.workspace}/properties", json={"gpu_quota": "eight", "managers": "manager-u"})
    ws = platform.api("jobqueue", "GET", f"workspaces/{world.workspace}", world.tokens["member"]).json()
    assert ws["settings"] is None and "gpu_quota" in ws["settings_errors"]
    resp = platform.api("jobqueue", "POST", "trainings", world.tokens["member"],
                        json={"workspace": world.workspace, "name": "t2", "entrypoint": "t.py"})
    assert resp.status_code == 409
    assert "workspace.gpu_quota" in resp.json()["errors"]


def test_workspace_outside_its_dates_runs_nothing(platform, world):
    platform.api("jobqueue", "PATCH", f"workspaces/{world.workspace}/settings", platform.admin_token,
                 json={"start_date": "2020-01-01", "end_date": "2020-12-31"})
    resp = platform.api("jobqueue", "POST", "trainings", world.tokens["member"],
                        json={"workspace": world.workspace, "name": "late", "entrypoint": "t.py"})
    assert resp.status_code == 409 and "ended on 2020-12-31" in resp.json()["message"]


def test_gpus_over_the_per_job_limit(platform, world):
    platform.api("jobqueue", "PATCH", f"workspaces/{world.workspace}/settings", platform.admin_token, json={"max_gpus_per_job": 2})
    resp = platform.api("jobqueue", "POST", "trainings", world.tokens["member"],
                        json={"workspace": world.workspace, "name": "big", "entrypoint": "t.py", "gpus": 3})
    assert resp.status_code == 422 and resp.json()["field"] == "gpus"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "entrypoint": "t.py"}, "workspace"),
        ({"workspace": "W", "name": "x", "entrypoint": ""}, "entrypoint"),
        ({"workspace": "W", "name": "x", "entrypoint": "../../etc/passwd"}, "entrypoint"),
        ({"workspace": "W", "name": "x", "entrypoint": "t.py", "gpus": 0}, "gpus"),
        ({"workspace": "W", "name": "x", "entrypoint": "t.py", "gpus": 5}, "gpus"),
        ({"workspace": "W", "name": "x", "entrypoint": "t.py", "launcher": "slurm"}, "launcher"),
        ({"workspace": "W", "name": "x", "entrypoint": "t.py", "surprise": 1}, "surprise"),
        ({"workspace": "W", "name": "x", "entrypoint": "t.py", "code_id": "nope"}, "code_id"),
        ({"workspace": "W", "name": "x", "entrypoint": "t.py", "env": {"PATH": "/x"}}, "env"),
        ({"workspace": "W", "name": "x", "entrypoint": "t.py", "sweep": {"grid": {"lr": []}}}, "sweep.grid.lr"),
        ({"workspace": "W", "name": "x", "entrypoint": "t.py", "sweep": {"grid": {"lr": [1, 2]}, "runs": [{"a": 1}]}}, "sweep"),
    ],
)
def test_bad_training_bodies_name_the_field(platform, world, body, field):
    if body.get("workspace") == "W":
        body["workspace"] = world.workspace
    resp = platform.api("jobqueue", "POST", "trainings", world.tokens["member"], json=body)
    assert resp.status_code == 422
    assert field in resp.json()["errors"], resp.json()
