"""One unprivileged system account per person, created by the platform and used for nothing else.

Notebooks (the spawner) and jobs (the local backend) run as the hub user's own
account, never as root, as a shared account, or as an account the platform did
not make:

- running as root, the platform creates the account on first use
  (``useradd``, a home under the data directory) and marks it as its own with
  the group ``flightbase-users`` (:data:`MARKER_GROUP`). An account that
  exists but lacks the mark (``debian``, ``ubuntu``, ``nobody``, a colleague's
  login), or whose uid is below ``min_uid``, is refused with a clear message:
  a hub user named like it must not borrow it.
- not running as root, the platform cannot switch accounts, and it never runs
  people's code as its own account. It refuses, unless the one-person
  development mode is chosen explicitly (``flightbase up --single-user-dev``):
  then the code of that one person (the initial administrator) runs as the
  platform's account, and everybody else's is refused.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from flightbase_server.hostfs import ensure_dir, running_as_root

MARKER_GROUP = "flightbase-users"
# useradd's default NAME_REGEX (login.defs), 32 characters at most
_ACCOUNT_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


class AccountError(RuntimeError):
    pass


@dataclass(frozen=True)
class AccountPolicy:
    """Which system account a person's code may run as (see the module's docstring)."""

    home_root: str
    min_uid: int = 1000
    # not running as root: the one person whose code may run as the platform's own account ("" = nobody)
    single_user_dev: str = ""


_lock = threading.Lock()


def _marker_gid() -> int:
    try:
        return grp.getgrnam(MARKER_GROUP).gr_gid
    except KeyError:
        proc = subprocess.run(["groupadd", MARKER_GROUP], capture_output=True, text=True)
        if proc.returncode not in (0, 9):  # 9: made by the other service meanwhile
            raise AccountError(f"cannot create the group {MARKER_GROUP!r}: {proc.stderr.strip()}") from None
        return grp.getgrnam(MARKER_GROUP).gr_gid


def _is_ours(entry: pwd.struct_passwd) -> bool:
    return entry.pw_name in grp.getgrnam(MARKER_GROUP).gr_mem


def account_for(name: str, policy: AccountPolicy) -> pwd.struct_passwd:
    """The system account ``name``'s code runs as, or :class:`AccountError` saying why it may not run."""
    if not running_as_root():
        if not policy.single_user_dev:
            raise AccountError(
                f"Flightbase is not running as root, so it cannot run {name!r}'s code as their own account, and it "
                "never runs people's code as its own: run it as root, or choose the one-person development mode "
                "(flightbase up --single-user-dev)")
        if name != policy.single_user_dev:
            raise AccountError(f"one-person development mode: only {policy.single_user_dev!r} may run code here, "
                               f"not {name!r}")
        return pwd.getpwuid(os.geteuid())
    return ensure_account(name, policy.home_root, policy.min_uid)


def ensure_account(name: str, home_root: str, min_uid: int = 1000) -> pwd.struct_passwd:
    """Return the platform's system account for ``name``, creating it when missing (as root only)."""
    if not _ACCOUNT_NAME.match(name):
        raise AccountError(f"{name!r} cannot be a system account name (lower-case letters, digits, '_' and '-', "
                           "at most 32, starting with a letter)")
    with _lock:
        _marker_gid()
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            if not running_as_root():
                raise AccountError(
                    f"no system account {name!r}, and Flightbase is not running as root, so it cannot create one"
                ) from None
            ensure_dir(home_root, 0o711)
            proc = subprocess.run(
                ["useradd", "--create-home", "--home-dir", os.path.join(home_root, name), "--shell", "/bin/bash",
                 "--user-group", "--groups", MARKER_GROUP, "--key", f"UID_MIN={min_uid}", name],
                capture_output=True, text=True,
            )
            if proc.returncode != 0:
                raise AccountError(f"cannot create system account {name!r}: {proc.stderr.strip()}")
            entry = pwd.getpwnam(name)
        else:
            if not _is_ours(entry) and entry.pw_dir == os.path.join(home_root, name) and running_as_root():
                # made by a Flightbase from before the mark (useradd with a home under the platform's
                # home folder, which only the platform does): marked now
                subprocess.run(["usermod", "--append", "--groups", MARKER_GROUP, name], check=True,
                               capture_output=True)
            elif not _is_ours(entry):
                raise AccountError(
                    f"the system account {name!r} exists on this machine but was not created by Flightbase "
                    f"(it is not in the group {MARKER_GROUP!r}); refusing to run as it. Give the person another "
                    "hub user name, or, if the account really is theirs, add it to that group")
    if entry.pw_uid < min_uid:
        raise AccountError(f"system account {name!r} is privileged (uid {entry.pw_uid}); refusing to run as it")
    return entry


def ensure_home(entry: pwd.struct_passwd, home_root: str) -> str:
    """The person's home under the platform's home folder, made if missing, theirs alone (0700).

    Used as HOME for their jobs and servers whatever /etc/passwd says: an
    account made by an earlier installation may point at a folder that is gone.
    Without root (the one-person development mode) it is the account's own home.
    """
    if not running_as_root():
        return entry.pw_dir
    ensure_dir(home_root, 0o711)
    return str(ensure_dir(Path(home_root) / entry.pw_name, 0o700, entry.pw_uid, entry.pw_gid))
