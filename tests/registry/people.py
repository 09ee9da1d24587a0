"""A fresh workspace with its people, made through the real APIs (registry tests need no training)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

_counter = itertools.count()
ROLES = ("manager", "owner", "member", "outsider")


@dataclass
class World:
    workspace: str
    other_workspace: str
    tokens: dict[str, str]  # role -> token ("admin" included)
    names: dict[str, str]  # role -> user name
    dataset: str = "d"


def make_world(platform) -> World:
    people = getattr(platform, "_registry_people", None)
    if people is None:
        people = {role: (f"reg-{role}", platform.create_user(f"reg-{role}")) for role in ROLES}
        platform._registry_people = people
    n = next(_counter)
    ws, other = f"reg{n}", f"regother{n}"
    admin = platform.admin_token
    for name, managers in ((ws, [people["manager"][0]]), (other, [])):
        resp = platform.api("jobqueue", "POST", "workspaces", admin, json={"name": name, "settings": {"managers": managers}})
        assert resp.status_code == 201, resp.text
    for role, target in (("manager", ws), ("owner", ws), ("member", ws), ("outsider", other)):
        resp = platform.api("jobqueue", "PUT", f"workspaces/{target}/members/{people[role][0]}", admin)
        assert resp.status_code == 200, resp.text
    d = platform.api("registry", "POST", f"workspaces/{ws}/datasets", people["owner"][1], json={"name": "d"})
    assert d.status_code == 201, d.text
    tokens = {role: tok for role, (_, tok) in people.items()} | {"admin": admin}
    names = {role: name for role, (name, _) in people.items()} | {"admin": "admin"}
    return World(ws, other, tokens, names)
