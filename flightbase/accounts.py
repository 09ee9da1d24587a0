"""One unprivileged system account per person, created on demand when running as root.

Notebooks (the spawner) and jobs (the local backend) run as the hub user's own
account, never as root or a shared account. Accounts with a uid below
``min_uid`` are system accounts and are refused, so a hub user named ``root``
or ``daemon`` cannot borrow them.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import threading


class AccountError(RuntimeError):
    pass


_lock = threading.Lock()


def ensure_account(name: str, home_root: str, min_uid: int = 1000) -> pwd.struct_passwd:
    """Return the system account for ``name``, creating it when we may."""
    with _lock:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            if os.geteuid() != 0:
                raise AccountError(
                    f"no system account {name!r}, and Flightbase is not running as root, so it cannot create one"
                ) from None
            os.makedirs(home_root, mode=0o755, exist_ok=True)
            proc = subprocess.run(
                ["useradd", "--create-home", "--home-dir", os.path.join(home_root, name), "--shell", "/bin/bash",
                 "--user-group", "--key", f"UID_MIN={min_uid}", name],
                capture_output=True, text=True,
            )
            if proc.returncode != 0:
                raise AccountError(f"cannot create system account {name!r}: {proc.stderr.strip()}")
            entry = pwd.getpwnam(name)
    if entry.pw_uid < min_uid:
        raise AccountError(f"system account {name!r} is privileged (uid {entry.pw_uid}); refusing to run as it")
    return entry


def running_as_root() -> bool:
    return os.geteuid() == 0


def ensure_home(entry: pwd.struct_passwd, home_root: str) -> str:
    """The person's home under the platform's data directory, made if missing.

    Used as HOME for their jobs and servers whatever /etc/passwd says: an
    account made by an earlier installation may point at a folder that is gone.
    """
    home = os.path.join(home_root, entry.pw_name)
    if not os.path.isdir(home):
        os.makedirs(home_root, mode=0o755, exist_ok=True)
        os.mkdir(home, 0o700)
        if running_as_root():
            os.chown(home, entry.pw_uid, entry.pw_gid)
    return home
