"""Waiting on the jobqueue's scheduler instead of sleeping: its passes, as its Prometheus page counts
them (``flightbase_scheduler_pass_seconds_count``, one per coordinator step, failed ones too;
read with the administrator's token, which holds ``read:metrics``)."""

from __future__ import annotations

import re
import time

import httpx

_PASSES = re.compile(r"^flightbase_scheduler_pass_seconds_count(?:\{[^}]*\})? (\S+)$", re.M)


def scheduler_passes(platform) -> int:
    """How many passes the platform's scheduler has made since the jobqueue started."""
    resp = httpx.get(f"{platform.url}/services/jobqueue/metrics",
                     headers={"Authorization": f"token {platform.admin_token}"}, timeout=30)
    assert resp.status_code == 200, resp.text
    found = _PASSES.search(resp.text)
    assert found, "the jobqueue's metrics page has no flightbase_scheduler_pass_seconds_count"
    return int(float(found.group(1)))


def wait_scheduler_passes(platform, passes: int = 2, timeout: float = 30) -> int:
    """Until the scheduler has made ``passes`` more passes than when called (the count at the end).

    With ``passes >= 2`` at least one whole pass began after the call (the one under way then
    may have read the state before it): what that pass did not do, the scheduler chose not to do.
    A pass comes at least every scheduling interval (2 s), sooner when something wakes it."""
    start = scheduler_passes(platform)
    deadline = time.monotonic() + timeout
    while True:
        now = scheduler_passes(platform)
        if now >= start + passes:
            return now
        assert time.monotonic() < deadline, f"the scheduler made {now - start} of {passes} passes in {timeout}s"
        time.sleep(0.1)
