"""Table tests of the pure permission rules in flightbase_server.authz."""

import pytest

from flightbase_server import authz
from flightbase_server.authz import Identity

P = authz.PREFIX
MEMBER_SCOPES = frozenset(authz.scope_name(p) for p in authz.all_permissions())

admin = Identity("root-admin", groups=frozenset(), scopes=frozenset({"admin:groups"}) | MEMBER_SCOPES)
alice = Identity("alice", groups=frozenset({"vision"}), scopes=MEMBER_SCOPES)  # manager of vision
bob = Identity("bob", groups=frozenset({"vision"}), scopes=MEMBER_SCOPES)
carol = Identity("carol", groups=frozenset({"nlp"}), scopes=MEMBER_SCOPES)
auditor = Identity("audit", scopes=frozenset({f"{P}trainings:read!group=vision"}))
readonly_token = Identity("bob", groups=frozenset({"vision"}), scopes=frozenset({f"{P}trainings:read"}))
MANAGERS = ("alice",)


@pytest.mark.parametrize(
    ("who", "permission", "workspace", "allowed", "visible"),
    [
        (admin, "trainings:manage", "vision", True, True),
        (admin, "workspace:manage", "anything", True, True),
        (alice, "workspace:manage", "vision", True, True),
        (alice, "datasets:delete", "vision", True, True),
        (bob, "trainings:write", "vision", True, True),
        (bob, "workspace:manage", "vision", False, True),
        (bob, "images:delete", "vision", False, True),
        (carol, "trainings:read", "vision", False, False),
        (carol, "trainings:read", "nlp", True, True),
        (auditor, "trainings:read", "vision", True, True),
        (auditor, "trainings:write", "vision", False, True),
        (auditor, "trainings:read", "nlp", False, False),
        (readonly_token, "trainings:read", "vision", True, True),
        (readonly_token, "trainings:write", "vision", False, True),
    ],
)
def test_check(who, permission, workspace, allowed, visible):
    grant = authz.check(who, permission, workspace, MANAGERS)
    assert (grant.allowed, grant.visible) == (allowed, visible)
    assert grant.allowed or grant.reason


@pytest.mark.parametrize(
    ("who", "members", "allowed", "visible"),
    [
        (bob, ("alice",), False, False),  # removed at the hub: the group's list decides, not the token's groups
        (carol, ("carol",), True, True),  # added at the hub: let in before the token's lookup expires
        (bob, None, True, True),  # no list to hand: the token's groups
        (auditor, (), True, True),  # a scope filtered to the workspace does not depend on membership
        (admin, (), True, True),
        (Identity("robot", kind="service", groups=frozenset({"vision"}), scopes=MEMBER_SCOPES), (), True, True),
    ],
)
def test_membership_is_read_from_the_group_when_the_service_has_it(who, members, allowed, visible):
    grant = authz.check(who, "trainings:read", "vision", MANAGERS, members)
    assert (grant.allowed, grant.visible) == (allowed, visible)
    assert authz.can_see(who, "vision", members) is visible


def test_unknown_permission_fails_loudly():
    with pytest.raises(KeyError):
        authz.check(alice, "trainings:explode", "vision")


def test_identity_from_hub_model():
    ident = Identity.from_hub_model({"name": "x", "kind": "user", "groups": ["a"], "scopes": ["admin:groups"]})
    assert ident.is_admin and ident.groups == {"a"}
    assert not Identity.from_hub_model({"name": "y"}).is_admin


def test_every_scope_matches_jupyterhub_custom_scope_pattern():
    from jupyterhub.scopes import _custom_scope_pattern

    for permission in authz.all_permissions():
        assert _custom_scope_pattern.match(authz.scope_name(permission))
