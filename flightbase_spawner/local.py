"""The spawner of the embedded deployment: local processes, one system account per person.

Each hub user's server runs as that person's own unprivileged system account,
never as root, a shared account, or an account the platform did not make
(:mod:`flightbase_server.accounts`: created on first spawn with its home under the
data directory; ``debian``, ``nobody`` or a privileged account is refused),
with the system group of the chosen workspace as its only extra group, so it
reads that workspace's datasets and no other's.

A Jupyter training (user options: workspace, image, gpus 0|1, datasets):

- waits for its GPU lease in the workspace's queue (``FlightbaseSpawnerMixin``),
  then starts with ``CUDA_VISIBLE_DEVICES`` set to the granted GPU (a CPU slot:
  no GPU visible, ``FLIGHTBASE_CPU_SLOTS`` set);
- opens in ``~/<workspace>`` (the person's files of that workspace: writable,
  kept across restarts);
- sees the chosen datasets read-only under ``~/<workspace>/datasets/<name>``
  (a symlink farm to the immutable, read-only dataset versions;
  ``FLIGHTBASE_DATASETS_DIR`` names the folder), made by a process running as
  the person (:mod:`flightbase_server.as_user`): root never works in a person's folders;
- runs on the host's Python environment: with no container runtime, an image
  is a name only here (the options form says so).
"""

from __future__ import annotations

import asyncio
import os
import resource
import sys
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner
from tornado import web
from traitlets import default

from flightbase_server import as_user, hostfs
from flightbase_server.accounts import ensure_home
from flightbase_spawner import options as fbopts
from flightbase_spawner.base import FlightbaseSpawnerMixin, OnThisMachineMixin


class FlightbaseLocalSpawner(OnThisMachineMixin, FlightbaseSpawnerMixin, LocalProcessSpawner):
    @default("cmd")
    def _cmd_default(self):
        # the platform's own environment (its venv is readable by every account)
        return [os.path.join(os.path.dirname(sys.executable), "jupyterhub-singleuser")]

    @default("start_timeout")
    def _start_timeout_default(self):
        return 24 * 3600  # includes the wait for a GPU in the queue; the user may cancel it

    async def start(self):
        opts, _ = await self.checked_options()
        account = self.person_account()
        self._account = account
        self._workspace_gid = hostfs.workspace_group(opts.workspace)
        lease = await self.acquire_lease(opts)
        try:
            folder = await self.prepare_folder(account, opts, lease)
            self._flightbase_env = fbopts.local_environment(
                opts, lease, public_url=self.public_url,
                datasets_dir=str(folder / "datasets") if lease and lease.get("datasets") else None)
            self.notebook_dir = str(folder)
            return await super().start()
        except BaseException:
            await self.release_lease()
            raise

    async def prepare_folder(self, account, opts: fbopts.JupyterOptions, lease: dict | None) -> Path:
        """``~/<workspace>`` with the chosen datasets linked in, made by a process running as the person."""
        # an account made by an earlier platform may name a home that is gone: the home is
        # the one under this platform's home_root (as for jobs)
        home = ensure_home(account, self.home_root)
        self._home = home
        datasets = [{"name": d["name"], "path": d["path"]} for d in (lease or {}).get("datasets") or []]
        args = {"home": home, "workspace": opts.workspace, "datasets": datasets}
        try:
            done = await asyncio.to_thread(as_user.run, "notebook-folder", args, uid=account.pw_uid,
                                           gid=account.pw_gid, groups=self._groups())
        except as_user.AsUserError as exc:
            raise web.HTTPError(409, f"cannot prepare ~/{opts.workspace}: {exc}") from None
        if done["blocked"]:
            self.log.warning("%s: not linking datasets %s: a file of that name is in the way",
                             self._log_name, done["blocked"])
        return Path(done["folder"])

    def _groups(self) -> list[int]:
        gid = getattr(self, "_workspace_gid", None)
        return [gid] if gid is not None else []

    def make_preexec_fn(self, name):
        """Become the person's account with the chosen workspace's group as the only extra group
        (not the account's groups from /etc/group), no core dumps, a private umask, and start in
        the notebook's folder (entered as the person, not as root)."""
        folder = self.notebook_dir or getattr(self, "_home", None)
        if not hostfs.running_as_root():
            return _no_core_dumps
        account, groups = self._account, self._groups()

        def preexec():
            os.setgid(account.pw_gid)
            os.setgroups(groups)
            os.setuid(account.pw_uid)
            os.umask(0o077)
            _no_core_dumps()
            if folder:
                os.chdir(folder)

        return preexec

    def user_env(self, env):
        account = getattr(self, "_account", None)
        if account is not None:
            env["USER"] = account.pw_name
            env["SHELL"] = account.pw_shell or "/bin/bash"
        if getattr(self, "_home", None):
            env["HOME"] = self._home
        return env

    def get_env(self):
        env = super().get_env()
        env.update(getattr(self, "_flightbase_env", {}))
        return env


def _no_core_dumps() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
