"""What the client says when the answer is not a service's JSON, against the real hub and proxy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flightbase.client import ApiError, Client

FLIGHTBASE = str(Path(sys.executable).parent / "flightbase")

pytestmark = pytest.mark.slow


def test_a_service_the_hub_does_not_route_is_said_in_one_line_not_the_hubs_html(platform, shared_world):
    """For a service it does not route the hub answers a redirect to its own pages (and there
    an HTML 404 page): so it does for the jobqueue while the platform starts, before the
    service is registered (seen: the CLI printed the page; and the client took the redirect,
    with no body, for an answer).  The client says which service did not answer, in one line."""
    with Client(platform.url, shared_world.tokens["owner"]) as c:
        with pytest.raises(ApiError) as err:
            c.request("nosuch", "GET", "info")
        assert err.value.status == 302
        assert err.value.message == ("the nosuch service did not answer (302 Found); if the platform is starting or "
                                     "restarting, try again in a moment")
        # where the redirect leads: the hub's HTML 404 page, said the same way
        with pytest.raises(ApiError) as err:
            c.request("nosuch", "GET", "info", follow_redirects=True)
        assert err.value.status == 404 and err.value.message.startswith("the nosuch service did not answer (404")


def test_the_service_s_own_errors_keep_their_message_and_field(platform, shared_world):
    with Client(platform.url, shared_world.tokens["owner"]) as c:
        with pytest.raises(ApiError) as err:
            c.request("jobqueue", "GET", "jobs/no-such-job")
    assert err.value.status == 404 and "no-such-job" in err.value.message and "<" not in err.value.message


def test_the_cli_says_it_in_one_line_too(platform, shared_world, tmp_path):
    proc = subprocess.run([FLIGHTBASE, "logs", "no-such-job"], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "FLIGHTBASE_URL": platform.url,
                               "FLIGHTBASE_TOKEN": shared_world.tokens["owner"]})
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "no-such-job" in proc.stderr, proc.stderr
