"""The spawner of the embedded deployment: local processes, one system account per person.

Each hub user's server runs as that person's own unprivileged system account,
never as root or as a shared account. When the hub runs as root the account is
created on first spawn (``useradd``), with its home under the data directory.
Accounts that are privileged (uid below ``min_uid``) are refused, so a hub user
named after a system account (``root``, ``daemon``...) cannot borrow it.
"""

from __future__ import annotations

import subprocess

from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Integer, Unicode

from flightbase.accounts import AccountError, ensure_account


class FlightbaseLocalSpawner(LocalProcessSpawner):
    home_root = Unicode(
        "/home",
        config=True,
        help="""Folder under which accounts created by Flightbase get their home.

        The embedded deployment sets it to ``<data_dir>/home``.
        """,
    )
    min_uid = Integer(
        1000,
        config=True,
        help="Lowest uid a server may run as; lower uids are system accounts and are refused.",
    )

    async def start(self):
        try:
            ensure_account(self.user.name, self.home_root, self.min_uid)
        except (AccountError, subprocess.CalledProcessError) as exc:
            raise RuntimeError(f"cannot start a server for {self.user.name}: {exc}") from None
        return await super().start()
