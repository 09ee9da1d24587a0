"""``flightbase usage``: bad flags exit 2 with one line naming the flag, before the platform is asked."""

import subprocess
import sys
from pathlib import Path

import pytest

FLIGHTBASE = str(Path(sys.executable).parent / "flightbase")


@pytest.mark.parametrize(("argv", "words"), [
    (["--by", "job"], "--by: unknown key 'job'"),
    (["--by", "user,user"], "--by: a key is named twice"),
    (["--from", "last week"], "--from: expected an ISO date"),
    (["--to", "2026-02-30"], "--to: expected an ISO date"),
    (["--from", "2026-12-08", "--to", "2026-12-01"], "--to: must be after --from"),
    (["--csv", "--json"], "not allowed with argument"),
    (["--frm", "2026-12-01"], "unrecognized arguments"),
])
def test_bad_flags_exit_2_with_one_line(tmp_path, argv, words):
    # a token and an address that answers nothing: the flags are refused before either is used
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "FLIGHTBASE_TOKEN": "x", "FLIGHTBASE_URL": "http://127.0.0.1:9"}
    proc = subprocess.run([FLIGHTBASE, "usage", *argv], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("usage:")
             and not line.startswith(" ")]
    assert len(lines) == 1 and words in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_good_flags_then_ask_the_platform(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "FLIGHTBASE_TOKEN": "x", "FLIGHTBASE_URL": "http://127.0.0.1:9"}
    proc = subprocess.run([FLIGHTBASE, "usage", "--by", "day,user", "--from", "2026-12-01"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert proc.returncode == 2 and "cannot reach" in proc.stderr
