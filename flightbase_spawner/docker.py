"""The spawner of the embedded deployment with the docker backend: each server a container of its image.

A thin DockerSpawner subclass. It shares the options form, the GPU lease,
the progress page and the idle check's token with the other spawners
(:class:`~flightbase_spawner.base.FlightbaseSpawnerMixin`), and the account
rules with the local one (:mod:`flightbase_server.accounts`). A Jupyter training:

1. checks the person's options against the workspace's images and datasets
   (read from the registry as the person), and finds the account it runs as
   (created on first use, as for the local spawner);
2. makes the chosen image available in the engine before it waits for a GPU,
   so an image that cannot be had fails at once without holding one: a
   built-in image is the local engine's, an uploaded one is pulled from the
   platform's OCI registry with the services' account, handed to the engine
   for the pull only (never to the container), and only from under the
   workspace's own path (:func:`~flightbase_spawner.containers.image_source`);
3. waits for its lease, prepares ``~/<workspace>`` as the person
   (:mod:`flightbase_server.as_user`), and sets the DockerSpawner traits that
   :func:`~flightbase_spawner.containers.spawn_overrides` (pure, table-tested)
   returns: the image, the mounts, the memory limit, the account, the labels
   and the security options;
4. lets DockerSpawner create and start the container. It runs on the host's
   network (the hub and the services listen on loopback) with the server on a
   free port of 127.0.0.1, chosen at each start.

Stopping the server stops and removes the container (``remove``) and releases
the lease; a server that ended on its own is removed, and its lease released,
when the hub's poll finds it ended (:meth:`FlightbaseDockerSpawner.poll`).
What a container gets is listed in ``containers.py``.
"""

from __future__ import annotations

import asyncio
import os
import shlex
from pathlib import Path

import docker.errors
from dockerspawner import DockerSpawner
from jupyterhub.utils import random_port
from tornado import web
from traitlets import Integer, Unicode, default

from flightbase_server import as_user, hostfs, secrets
from flightbase_server.accounts import ensure_home
from flightbase_server.workspaces import SettingsError, parse_settings
from flightbase_spawner import options as fbopts
from flightbase_spawner.base import FlightbaseSpawnerMixin, OnThisMachineMixin
from flightbase_spawner.containers import (ImageRefused, NotebookContainer, container_environment, image_source,
                                           spawn_overrides)


class FlightbaseDockerSpawner(OnThisMachineMixin, FlightbaseSpawnerMixin, DockerSpawner):
    oci_registry_url = Unicode(
        "",
        config=True,
        help="""The platform's OCI registry (e.g. http://127.0.0.1:5000), where uploaded images live.

        Images there are pulled with the services' account (user
        ``flightbase_server.secrets.OCI_REGISTRY_USER``, password
        ``oci_registry_password`` of ``<data_dir>/secrets.json``), given to
        the engine for the pull only, and only from under the workspace's own
        path. Empty: no uploaded images.
        """,
    )
    data_dir = Unicode("", config=True, help="The platform's data directory (for secrets.json's registry password).")
    cores = Integer(
        0, config=True, help="Cores CPU slots are pinned to (slot i on core i mod cores); 0: this machine's count."
    )

    @default("cmd")
    def _cmd_default(self):
        # whatever the image's own CMD, it serves JupyterLab to this hub (an uploaded image built on
        # the notebook image has it on PATH; one without fails with the engine's "not found")
        return ["jupyterhub-singleuser"]

    @default("start_timeout")
    def _start_timeout_default(self):
        return 24 * 3600  # includes the pull and the wait for a GPU in the queue; the user may cancel it

    @default("prefix")
    def _prefix_default(self):
        return "flightbase-notebook"

    @default("remove")
    def _remove_default(self):
        return True  # the person's files are in their home; nothing of a server outlives it

    @default("network_name")
    def _network_name_default(self):
        return "host"

    @default("use_internal_ip")
    def _use_internal_ip_default(self):
        return True  # on the host's network there is no port to publish (get_ip_and_port says where)

    @default("ip")
    def _ip_default(self):
        return "127.0.0.1"  # the host's network: the server must not listen beyond loopback

    @default("format_volume_name")
    def _format_volume_name_default(self):
        # the mount sources are literal paths of the platform, never templates
        return lambda path, spawner: path

    def registry_host(self) -> str:
        url = self.oci_registry_url
        return url.split("://", 1)[-1].split("/", 1)[0] if url else ""

    # -- the start ---------------------------------------------------------------------
    async def start(self):
        opts, choices = await self.checked_options()
        account = self.person_account()
        memory_gb_per_gpu = self.workspace_memory(opts.workspace)
        reference = choices.references.get(opts.image) or opts.image
        self._pulled = None
        await self.pull_image(reference, workspace=opts.workspace)
        await self.check_image(reference, account.pw_uid, account.pw_gid, name=opts.image)
        ws_gid = hostfs.workspace_group(opts.workspace)
        groups = [ws_gid] if ws_gid is not None else []
        lease = await self.acquire_lease(opts)
        try:
            home = await self.prepare_home(account, opts, groups)
            n = NotebookContainer(
                user=self.user.name, server=self.name, workspace=opts.workspace, image=opts.image,
                reference=reference, uid=account.pw_uid, gid=account.pw_gid, groups=groups, home=home,
                memory_gb_per_gpu=memory_gb_per_gpu, cores=self.cores or os.cpu_count() or 1, lease=lease)
            for trait, value in spawn_overrides(n).items():
                setattr(self, trait, _literal(value) if trait.startswith("extra_") else value)
            self._flightbase_env = container_environment(n, opts, public_url=self.public_url)
            self.port = random_port()  # a free port of the host, this start's (the host's network)
            return await super().start()
        except BaseException:
            await self.release_lease()
            raise

    def workspace_memory(self, workspace: str) -> float:
        """The workspace's ``memory_gb_per_gpu`` (its hub group's properties)."""
        group = next((g for g in self.user.groups if g.name == workspace), None)
        try:
            return parse_settings(dict(group.properties or {}) if group is not None else {}).memory_gb_per_gpu
        except SettingsError as exc:
            raise web.HTTPError(409, f"cannot start a Jupyter training: workspace {workspace!r} has a bad "
                                     f"setting: {exc}") from None

    async def prepare_home(self, account, opts: fbopts.JupyterOptions, groups: list[int]) -> str:
        """The person's home (an entry of the root-owned home folder: safe to mount), with ``~/<workspace>``
        made in it by a process running as the person. Datasets are mounts here, not links: the
        folder's stale dataset links of a local server go."""
        try:
            home = ensure_home(account, self.home_root)
            args = {"home": home, "workspace": opts.workspace, "datasets": []}
            await asyncio.to_thread(as_user.run, "notebook-folder", args, uid=account.pw_uid, gid=account.pw_gid,
                                    groups=groups)
            return hostfs.mount_source(home)
        except as_user.AsUserError as exc:
            raise web.HTTPError(409, f"cannot prepare ~/{opts.workspace}: {exc}") from None
        except hostfs.UnsafePath as exc:
            raise web.HTTPError(409, f"cannot mount the home of {self.user.name}: {exc}") from None

    # -- the image ---------------------------------------------------------------------
    async def pull_image(self, image, workspace: str | None = None):
        """Make ``image`` available in the engine (DockerSpawner's ``pull_policy``), from where it may come.

        Called by :meth:`start` with the workspace before the lease is asked
        for, then again by DockerSpawner's start, which finds it done.
        """
        if image == getattr(self, "_pulled", None) or self.pull_policy == "skip":
            return
        if workspace is None:
            workspace = self.flightbase_user_options().workspace
        try:
            source = image_source(image, workspace, self.registry_host())
        except ImageRefused as exc:
            raise web.HTTPError(403, f"cannot start a Jupyter training: {exc}") from None
        present = True
        try:
            await self.docker("inspect_image", image)
        except docker.errors.NotFound:
            present = False
        if present and self.pull_policy != "always":
            self._pulled = image
            return
        if not present and self.pull_policy == "never":
            raise web.HTTPError(503, f"image {image!r} is not in the container engine (pull_policy: never)")
        if not source.registry and not present:
            raise web.HTTPError(503, f"image {image!r} is not on this machine (the built-in images are made by "
                                     "`make run`; others are uploaded with `flightbase images upload`)")
        auth = None
        if source.platform_registry:
            auth = {"username": secrets.OCI_REGISTRY_USER,
                    "password": secrets.read(Path(self.data_dir))["oci_registry_password"]}
        self.log.info("pulling image %s for %s", image, self._log_name)
        try:
            # in a thread of its own: DockerSpawner's one executor serves every server's calls,
            # and a large pull there would hold up everyone's start, stop and poll
            await asyncio.to_thread(self.client.pull, source.repository, tag=source.tag, auth_config=auth)
        except docker.errors.APIError as exc:
            raise web.HTTPError(503, f"cannot pull image {image!r}: {exc.explanation or exc}") from None
        self._pulled = image

    _served: dict[str, str] = {}  # image id -> "" when it can serve JupyterLab, else why not (one probe per image)

    async def check_image(self, image: str, uid: int, gid: int, name: str | None = None) -> None:
        """Refuse, before the lease, an image in which the person's account cannot start the server's command.

        Probed once per image (by id; the hub keeps the answer) with a short
        container as the person, with no network and no capability. Without
        it, such a server would wait in the queue, take a GPU, and then fail
        with the hub's generic "failed to start" rather than the reason.
        """
        command = (self.cmd or ["jupyterhub-singleuser"])[0]
        try:
            image_id = (await self.docker("inspect_image", image))["Id"]
        except docker.errors.NotFound:  # pull_policy "skip" pulled nothing
            raise web.HTTPError(503, f"image {name or image!r} is not in the container engine") from None
        why = FlightbaseDockerSpawner._served.get(image_id)
        if why is None:
            why = await asyncio.to_thread(_probe, self.client, image_id, f"{uid}:{gid}", command)
            FlightbaseDockerSpawner._served[image_id] = why
        if why:
            raise web.HTTPError(422, f"cannot start a Jupyter training in image {name or image!r}: {why}")

    # -- a server that ended on its own -------------------------------------------------------
    async def poll(self):
        """DockerSpawner's poll; a container whose server has ended is removed, and its lease released.

        The hub stops a server that is still running (``stop`` removes the
        container and releases the lease) but only forgets one that has ended:
        its container and its GPU are let go here, once its exit status is read.
        """
        status = await super().poll()
        if status is not None and (self.object_id or self.lease):
            self.log.info("%s ended (%s): removing its container, releasing its lease", self._log_name, status)
            if self.object_id and self.remove:
                await self.remove_object()
                self.object_id = ""
            await self.release_lease()
        return status

    # -- the server's address and environment ------------------------------------------------
    async def get_ip_and_port(self):
        # the host's network: the server listens where JUPYTERHUB_SERVICE_URL told it to
        return self.ip, self.port

    def get_env(self):
        env = super().get_env()
        env.update(getattr(self, "_flightbase_env", {}))
        return env


def _probe(client, image_id: str, user: str, command: str) -> str:
    """"" when ``command`` is on the image's PATH for ``user``; else why the server cannot start."""
    script = f"command -v {shlex.quote(command)} >/dev/null"
    try:
        created = client.create_container(
            image_id, command=[script], entrypoint=["/bin/sh", "-c"], user=user, network_disabled=True,
            host_config=client.create_host_config(cap_drop=["ALL"], security_opt=["no-new-privileges"],
                                                  mem_limit=256 << 20, pids_limit=64))
    except docker.errors.APIError as exc:
        return f"the container engine refused it: {exc.explanation or exc}"
    try:
        client.start(created["Id"])
        code = client.wait(created["Id"], timeout=120).get("StatusCode", 1)
    except docker.errors.APIError as exc:  # no /bin/sh, say
        return f"it cannot run /bin/sh as uid {user} ({exc.explanation or exc}); Flightbase runs images that have it"
    finally:
        try:
            client.remove_container(created["Id"], force=True)
        except docker.errors.APIError:
            pass
    if code != 0:
        return (f"{command!r} is not on its PATH (an image for Jupyter trainings is built on the notebook image, "
                "or installs JupyterHub's jupyterhub-singleuser)")
    return ""


def _literal(value):
    """``value`` with its braces doubled: DockerSpawner formats every string of the ``extra_*`` traits as
    a template ({username}, ...), and a server or workspace name is a value here, never a template."""
    if isinstance(value, str):
        return value.replace("{", "{{").replace("}", "}}")
    if isinstance(value, dict):
        return {_literal(k): _literal(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_literal(v) for v in value)
    return value
