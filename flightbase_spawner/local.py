"""The spawner of the embedded deployment: local processes, one system account per person.

Each hub user's server runs as that person's own unprivileged system account,
never as root or as a shared account. When the hub runs as root the account is
created on first spawn (``useradd``), with its home under the data directory.
Accounts that are privileged (uid below ``min_uid``) are refused, so a hub user
named after a system account (``root``, ``daemon``...) cannot borrow it.

A Jupyter training (user options: workspace, image, gpus 0|1, datasets):

- waits for its GPU lease in the workspace's queue (``FlightbaseSpawnerMixin``),
  then starts with ``CUDA_VISIBLE_DEVICES`` set to the granted GPU (a CPU slot:
  no GPU visible, ``FLIGHTBASE_CPU_SLOTS`` set);
- opens in ``~/<workspace>`` (the person's files of that workspace: writable,
  kept across restarts);
- sees the chosen datasets read-only under ``~/<workspace>/datasets/<name>``
  (a symlink farm to the immutable, read-only dataset versions;
  ``FLIGHTBASE_DATASETS_DIR`` names the folder);
- runs on the host's Python environment: with no container runtime, an image
  is a name only here (the options form says so).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner
from tornado import web
from traitlets import Integer, Unicode, default

from flightbase.accounts import AccountError, ensure_account, ensure_home, running_as_root
from flightbase_spawner import options as fbopts
from flightbase_spawner.base import FlightbaseSpawnerMixin


def link_datasets(folder: Path, datasets: list[dict]) -> list[str]:
    """Make ``folder/<name>`` point at each dataset version; remove stale links; never touch real files.

    Returns the names that could not be linked because a real file or folder has that name.
    """
    folder.mkdir(exist_ok=True)
    wanted = {d["name"]: d["path"] for d in datasets}
    blocked = []
    for entry in folder.iterdir():
        if entry.is_symlink() and entry.name not in wanted:
            entry.unlink()
    for name, target in wanted.items():
        link = folder / name
        if link.is_symlink():
            link.unlink()
        elif link.exists():
            blocked.append(name)
            continue
        link.symlink_to(target, target_is_directory=True)
    return blocked


class FlightbaseLocalSpawner(FlightbaseSpawnerMixin, LocalProcessSpawner):
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
    gpu_kind_name = Unicode("gpu", config=True, help="What the jobqueue's GPUs are here: gpu or cpu-slot.")

    @default("cmd")
    def _cmd_default(self):
        # the platform's own environment (its venv is readable by every account)
        return [os.path.join(os.path.dirname(sys.executable), "jupyterhub-singleuser")]

    @default("start_timeout")
    def _start_timeout_default(self):
        return 24 * 3600  # includes the wait for a GPU in the queue; the user may cancel it

    def gpu_kind(self) -> str:
        return self.gpu_kind_name

    async def start(self):
        try:
            opts = self.flightbase_user_options()
            await self.check_workspace_choices(opts)
        except fbopts.OptionsError as exc:
            raise web.HTTPError(400, f"cannot start a Jupyter training: {exc}") from None
        try:
            account = ensure_account(self.user.name, self.home_root, self.min_uid)
        except (AccountError, subprocess.CalledProcessError) as exc:
            raise RuntimeError(f"cannot start a server for {self.user.name}: {exc}") from None
        lease = await self.acquire_lease(opts)
        try:
            folder = self.prepare_folder(account, opts, lease)
            self._flightbase_env = fbopts.local_environment(
                opts, lease, public_url=self.public_url,
                datasets_dir=str(folder / "datasets") if lease and lease.get("datasets") else None)
            self.notebook_dir = str(folder)
            return await super().start()
        except BaseException:
            await self.release_lease()
            raise

    def prepare_folder(self, account, opts: fbopts.JupyterOptions, lease: dict | None) -> Path:
        # an account made by an earlier platform may name a home that is gone: the home is
        # the one under this platform's home_root (as for jobs)
        home = Path(ensure_home(account, self.home_root)) if running_as_root() else Path(account.pw_dir)
        self._home = str(home)
        folder = home / opts.workspace
        folder.mkdir(mode=0o700, exist_ok=True)
        datasets = (lease or {}).get("datasets") or []
        if datasets or (folder / "datasets").is_dir():
            blocked = link_datasets(folder / "datasets", datasets)
            if blocked:
                self.log.warning("%s: not linking datasets %s: a file of that name is in the way",
                                 self._log_name, blocked)
        if running_as_root():
            for path in (folder, folder / "datasets", *(folder / "datasets").glob("*")):
                if path.exists() or path.is_symlink():
                    os.lchown(path, account.pw_uid, account.pw_gid)
        return folder

    def user_env(self, env):
        env = super().user_env(env)
        if getattr(self, "_home", None):
            env["HOME"] = self._home
        return env

    def get_env(self):
        env = super().get_env()
        env.update(getattr(self, "_flightbase_env", {}))
        return env
