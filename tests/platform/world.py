"""A small world of people and things in a fresh workspace, made through the real APIs."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

_counter = itertools.count()


@dataclass
class World:
    workspace: str
    other_workspace: str
    tokens: dict[str, str]  # role -> token
    names: dict[str, str]  # role -> user name
    training_id: str
    dataset: str
    image: str


def users(platform) -> dict[str, tuple[str, str]]:
    """The same four people for every world: role -> (name, token)."""
    cache = getattr(platform, "_people", None)
    if cache is None:
        cache = {role: (f"{role}-u", platform.create_user(f"{role}-u")) for role in ("manager", "owner", "member", "outsider")}
        platform._people = cache
    return cache


def make_world(platform) -> World:
    people = users(platform)
    n = next(_counter)
    ws, other = f"ws{n}", f"other{n}"
    admin = platform.admin_token
    for name, managers in ((ws, [people["manager"][0]]), (other, [])):
        resp = platform.api("jobqueue", "POST", "workspaces", admin, json={"name": name, "settings": {"managers": managers, "gpu_quota": 4}})
        assert resp.status_code == 201, resp.text
    for role in ("manager", "owner", "member"):
        assert platform.api("jobqueue", "PUT", f"workspaces/{ws}/members/{people[role][0]}", admin).status_code == 200
    assert platform.api("jobqueue", "PUT", f"workspaces/{other}/members/{people['outsider'][0]}", admin).status_code == 200
    owner = people["owner"][1]
    t = platform.api("jobqueue", "POST", "trainings", owner, json={"workspace": ws, "name": "t", "command": ["python", "train.py"], "gpus": 1})
    assert t.status_code == 201, t.text
    d = platform.api("registry", "POST", f"workspaces/{ws}/datasets", owner, json={"name": "d"})
    assert d.status_code == 201, d.text
    i = platform.api("registry", "POST", f"workspaces/{ws}/images", owner, json={"name": "img", "reference": "example.org/team/img:1"})
    assert i.status_code == 201, i.text
    tokens = {role: tok for role, (_, tok) in people.items()}
    tokens["admin"] = admin
    names = {role: name for role, (name, _) in people.items()}
    names["admin"] = "admin"
    return World(ws, other, tokens, names, t.json()["id"], "d", "img")
