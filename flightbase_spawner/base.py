"""What both Flightbase spawners share: the options form, and the GPU lease from the jobqueue.

:class:`FlightbaseSpawnerMixin` goes before the concrete spawner class
(``LocalProcessSpawner`` or ``KubeSpawner``). Its :meth:`acquire_lease`:

1. asks the jobqueue for a one-GPU lease in the chosen workspace, as the user
   (with the server's own API token, which the hub made before ``start``);
2. while the lease is queued, long-polls it and feeds the hub's progress page
   (queue position, estimated start, why it waits);
3. if the spawn is cancelled (the user stops the pending server) or fails,
   releases the lease.

``stop`` releases it too. Whatever else ends a server (a crash, a hub that
lost a pending spawn), the jobqueue's reconciler notices the server is gone
from the hub and releases its lease (see flightbase_jobqueue.culler).

With the lease the spawner gives the jobqueue a token that reaches this one
server and nothing else (``access:servers!server=<user>/<name>``, owned by the
server's owner): the idle check reads the server's kernels with it. The
jobqueue never sends its own token to a server, which runs people's code
(docs/security.md). The token is deleted when the lease is released.
"""

from __future__ import annotations

import asyncio
import html
import pwd
from urllib.parse import quote

import httpx
from tornado import web
from traitlets import Float, HasTraits, Integer, Unicode, default

from flightbase_server.accounts import AccountError, AccountPolicy, account_for
from flightbase_spawner import options as fbopts

JOBQUEUE_API = "/services/jobqueue/api/v1"
REGISTRY_API = "/services/registry/api/v1"
FORM_TOKEN_SCOPES = ["access:services!service=registry", "read:users:groups!user", "read:users:name!user",
                     "custom:flightbase:images:read", "custom:flightbase:datasets:read"]


class LeaseError(web.HTTPError):
    """The jobqueue refused the GPU lease; the hub shows the reason (a 4xx keeps its status)."""

    def __init__(self, status: int, message: str):
        super().__init__(status if 400 <= status < 500 else 503, message)


class FlightbaseSpawnerMixin(HasTraits):
    jobqueue_url = Unicode(
        "", config=True, help="The jobqueue service's own URL (e.g. http://127.0.0.1:8082), used for GPU leases."
    )
    registry_url = Unicode(
        "", config=True, help="The registry service's own URL, read for the options form's images and datasets."
    )
    public_url = Unicode(
        "", config=True, help="The hub's public URL as a server reaches it (FLIGHTBASE_URL of the notebook's client)."
    )
    lease_poll_seconds = Float(10.0, config=True, help="Longest single wait of the lease's long poll.")

    lease: dict | None = None  # the lease as the jobqueue last described it
    _lease_changed: asyncio.Event | None = None
    _activity_token: str | None = None  # this server's token for the jobqueue's idle check

    # -- the form ----------------------------------------------------------------
    @default("options_form")
    def _options_form_default(self):
        return FlightbaseSpawnerMixin.render_options_form

    @default("options_from_form")
    def _options_from_form_default(self):
        return fbopts.from_form

    def member_workspaces(self) -> list[str]:
        return sorted(g.name for g in self.user.groups)

    async def render_options_form(self) -> str:
        token = self.user.new_api_token(note="flightbase options form", expires_in=120, scopes=FORM_TOKEN_SCOPES)
        try:
            choices = await self.workspace_choices(token, self.member_workspaces())
        finally:
            self.forget_token(token)
        return fbopts.render_form(choices)

    def forget_token(self, token: str) -> None:
        from jupyterhub import orm

        found = orm.APIToken.find(self.user.db, token)
        if found is not None:
            self.user.db.delete(found)
            self.user.db.commit()

    async def workspace_choices(self, token: str, workspaces: list[str]) -> dict[str, fbopts.WorkspaceChoices]:
        """Each workspace's images and datasets, read from the registry as the user."""
        headers = {"Authorization": f"token {token}"}
        out = {}
        async with httpx.AsyncClient(base_url=self.registry_url + REGISTRY_API, headers=headers, timeout=10) as http:
            for ws in workspaces:
                images, datasets = await asyncio.gather(http.get(f"/workspaces/{quote(ws)}/images"),
                                                        http.get(f"/workspaces/{quote(ws)}/datasets"))
                if images.status_code == 404:
                    continue  # a hub group that is not a workspace the user may use
                images.raise_for_status()
                datasets.raise_for_status()
                found = images.json()
                notes = {i.get("runs_as") for i in found if i.get("runs_as")}
                out[ws] = fbopts.WorkspaceChoices(
                    images=[i["name"] for i in found], datasets=[d["name"] for d in datasets.json()],
                    gpu_kind=self.gpu_kind(), note="; ".join(sorted(notes)),
                    references={i["name"]: i.get("reference") or i["name"] for i in found})
        return out

    def gpu_kind(self) -> str:
        return "gpu"

    def flightbase_user_options(self) -> fbopts.JupyterOptions:
        return fbopts.parse_options(self.user_options, self.member_workspaces())

    async def checked_options(self) -> tuple[fbopts.JupyterOptions, fbopts.WorkspaceChoices]:
        """The form's options and their workspace's choices, or a 400 that says what is wrong."""
        try:
            opts = self.flightbase_user_options()
            return opts, await self.check_workspace_choices(opts)
        except fbopts.OptionsError as exc:
            raise web.HTTPError(400, f"cannot start a Jupyter training: {exc}") from None

    async def check_workspace_choices(self, opts: fbopts.JupyterOptions) -> fbopts.WorkspaceChoices:
        choices = await self.workspace_choices(self.api_token, [opts.workspace])
        if opts.workspace not in choices:
            raise fbopts.OptionsError("workspace", f"no workspace named {opts.workspace!r}")
        fbopts.check_choices(opts, choices[opts.workspace])
        return choices[opts.workspace]

    # -- the lease ---------------------------------------------------------------
    def _jobqueue(self, token: str | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.jobqueue_url + JOBQUEUE_API, timeout=self.lease_poll_seconds + 20,
                                 headers={"Authorization": f"token {token or self.api_token}"})

    def _set_lease(self, lease: dict | None) -> None:
        self.lease = lease
        if self._lease_changed is None:
            self._lease_changed = asyncio.Event()
        self._lease_changed.set()

    async def acquire_lease(self, opts: fbopts.JupyterOptions) -> dict | None:
        """The granted lease, after waiting in the queue as long as it takes; None without a GPU."""
        if not opts.gpus:
            return None
        if self._activity_token is None:
            self._activity_token = self.user.new_api_token(
                note=f"flightbase idle check of {self._log_name}",
                scopes=[f"access:servers!server={self.user.name}/{self.name}"])
        async with self._jobqueue() as http:
            resp = await http.post("/leases", json={"workspace": opts.workspace, "server": self.name,
                                                    "image": opts.image, "datasets": list(opts.datasets),
                                                    "activity_token": self._activity_token})
            if resp.status_code >= 400:
                raise LeaseError(resp.status_code, f"cannot start a Jupyter training: {_error_text(resp)}")
            self._set_lease(resp.json())
            try:
                while self.lease["state"] == "queued":
                    resp = await http.get(f"/leases/{self.lease['id']}", params={"wait": self.lease_poll_seconds})
                    if resp.status_code >= 400:
                        raise LeaseError(resp.status_code, f"the GPU request failed: {_error_text(resp)}")
                    self._set_lease(resp.json())
            except BaseException:  # cancelled by the user, or the jobqueue is gone: give the place back
                await asyncio.shield(self.release_lease())
                raise
        if self.lease["state"] != "granted":
            lease, self.lease = self.lease, None
            raise LeaseError(409, f"the GPU request was {lease['state']}: {lease.get('reason') or 'no reason given'}")
        return self.lease

    async def release_lease(self, lease: dict | None = None, token: str | None = None) -> None:
        lease, self.lease = lease or self.lease, None
        token = token or self.api_token
        if self._activity_token is not None:
            self.forget_token(self._activity_token)
            self._activity_token = None
        if not lease or not token:
            return
        try:
            async with self._jobqueue(token) as http:
                resp = await http.delete(f"/leases/{lease['id']}")
            if resp.status_code >= 400:
                self.log.warning("could not release lease %s of %s: %s", lease["id"], self._log_name,
                                 _error_text(resp))
        except httpx.HTTPError as exc:  # the reconciler releases it once the hub no longer has the server
            self.log.warning("could not release lease %s of %s: %s", lease["id"], self._log_name, exc)

    async def progress(self):
        """The hub's progress page: queue position and estimated start while the lease waits."""
        if self._lease_changed is None:
            self._lease_changed = asyncio.Event()
        last = None
        while True:
            lease = self.lease
            if lease and lease["state"] == "queued":
                message = fbopts.queue_message(lease)
                if message != last:
                    last = message
                    yield {"progress": 10, "message": message,
                           "html_message": f"{html.escape(message)}. <em>Stop Server</em> (here or on the "
                                           f"<a href=\"{self.hub.base_url}home\">home page</a>) cancels the wait."}
            elif lease and lease["state"] == "granted":
                kind = "GPU slot" if lease.get("gpu_kind") == "cpu-slot" else "GPU"
                yield {"progress": 50, "message": f"{kind} {','.join(map(str, lease['gpus']))} granted; "
                                                  "starting JupyterLab"}
                return
            self._lease_changed.clear()
            try:
                await asyncio.wait_for(self._lease_changed.wait(), 1.0)
            except asyncio.TimeoutError:
                pass
            if lease is None and self.lease is None and last is not None:
                return

    # -- state across hub restarts -------------------------------------------------
    def get_state(self):
        state = super().get_state()
        if self.lease:
            state["flightbase_lease"] = self.lease
        if self._activity_token:
            state["flightbase_activity_token"] = self._activity_token
        return state

    def load_state(self, state):
        super().load_state(state)
        self.lease = state.get("flightbase_lease")
        self._activity_token = state.get("flightbase_activity_token")

    def clear_state(self):
        super().clear_state()
        self.lease = None

    async def stop(self, now=False):
        lease, token = self.lease, self.api_token  # (the concrete spawner's stop clears both)
        try:
            await super().stop(now=now)
        finally:
            await self.release_lease(lease, token)


def _error_text(resp: httpx.Response) -> str:
    try:
        body = resp.json()
        return body.get("message") or str(body.get("detail") or "") or resp.text
    except ValueError:
        return resp.text



class OnThisMachineMixin(HasTraits):
    """What the spawners that run servers on this machine (as processes, or in containers) share:
    the person's account, made by the platform (:mod:`flightbase_server.accounts`), and the jobqueue's
    kind of GPU here."""

    home_root = Unicode(
        "/home",
        config=True,
        help="""Folder under which accounts created by Flightbase get their home.

        The embedded deployment sets it to ``<data_dir>/home``. It must be root's and
        writable by root only (a container spawner mounts each home as an entry of it).
        """,
    )
    min_uid = Integer(1000, config=True,
                      help="Lowest uid a server may run as; lower uids are system accounts and are refused.")
    gpu_kind_name = Unicode("gpu", config=True, help="What the jobqueue's GPUs are here: gpu or cpu-slot.")
    single_user_dev = Unicode(
        "",
        config=True,
        help="""When the hub does not run as root: the one person whose server may run as the hub's own account.

        Empty (the default) refuses every server then: the hub cannot switch
        accounts, and it never runs people's code as its own. ``flightbase up
        --single-user-dev`` sets it to the initial administrator, for a
        one-person development setup only.
        """,
    )

    def gpu_kind(self) -> str:
        return self.gpu_kind_name

    def person_account(self) -> pwd.struct_passwd:
        """The account the person's server runs as, or a 403 that says why there is none."""
        try:
            return account_for(self.user.name, AccountPolicy(self.home_root, self.min_uid, self.single_user_dev))
        except AccountError as exc:
            raise web.HTTPError(403, f"cannot start a server for {self.user.name}: {exc}") from None
