"""The server extension: /flightbase/... routes of the single-user server.

A thin adapter: each handler calls the hub's services through
:class:`flightbase.client.Client` with this server's token
(``JUPYTERHUB_API_TOKEN``, or ``FLIGHTBASE_TOKEN``) and answers JSON. The
services' errors are passed on as they are (status, ``message``, ``field``,
``errors``), so the front end shows them next to the field they concern.
What the sidebar shows is computed in :mod:`flightbase_labext.views`.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import os
import tempfile
from pathlib import Path

import tornado
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from flightbase.client import ApiError, Client, ConfigError

from . import __version__, views

LOG_LINES = 2000  # the most log lines one request returns (the end of the log)


class BadRequest(Exception):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field, self.message = field, message


class Creations:
    """The creations (trainings) this server made for requests with an ``Idempotency-Key``,
    by key: the browser sends one key per submission and sends it again when it retries a
    request whose answer it did not get.

    The services already answer a key they know with the training it created, but a
    retry through this server would differ from the first request (a script or notebook
    is uploaded again, under a new code id), so the key would be refused there as another
    request's. So the retry is answered here, from the first request's result (awaited if
    it is still under way): the same training, not a second one. A request with a known key
    and another body is refused, as the services do. A failed creation is forgotten, so
    that a retry tries again (with the same key, which the services then recognise if it
    had in fact been created). Only the last ``keep`` keys are kept: a retry comes within
    seconds. One server is one person's, so keys need no owner here."""

    def __init__(self, keep: int = 256):
        self.keep = keep
        self._made: dict[str, tuple[str, asyncio.Future]] = {}  # key -> (the request's digest, its result)

    async def once(self, key: str | None, body: dict, create) -> tuple[dict, bool]:
        """``(result, replayed)``: ``await create()``'s result, or the result of the request made
        earlier with ``key`` (``replayed``); a BadRequest for ``key`` with another body."""
        if key is None:
            return await create(), False
        # (a digest, not the body: the body's secret values are not kept longer than the request)
        digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
        known = self._made.get(key)
        if known is not None:
            if known[0] != digest:
                raise BadRequest("Idempotency-Key", "was already used for another request; "
                                                    "send a new key with each new request")
            return await asyncio.shield(known[1]), True
        future = asyncio.ensure_future(create())
        self._made[key] = (digest, future)
        while len(self._made) > self.keep:
            del self._made[next(iter(self._made))]
        try:
            return await asyncio.shield(future), False
        except BaseException:
            if self._made.get(key, (None, None))[1] is future:
                del self._made[key]
            raise


CREATIONS = Creations()


class FlightbaseHandler(APIHandler):
    """Base: a Client per request, blocking calls off the event loop, errors as JSON."""

    def hub_url(self) -> str:
        """Where the services are: FLIGHTBASE_URL, else the proxy that routed this request
        (it routes /services/ too; JUPYTERHUB_API_URL names the hub's own port, which does not)."""
        return os.environ.get("FLIGHTBASE_URL") or f"{self.request.protocol}://{self.request.host}"

    def client(self) -> Client:
        return Client(self.hub_url())

    async def call(self, fn, *args, **kwargs):
        def run():
            with self.client() as c:
                return fn(c, *args, **kwargs)

        return await asyncio.get_running_loop().run_in_executor(None, run)

    def reply(self, body, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(body))

    def fail(self, status: int, message: str, field: str | None = None, errors: dict | None = None) -> None:
        body = {"status": status, "message": message}
        if field:
            body["field"] = field
        if errors or field:
            body["errors"] = errors or {field: message}
        self.reply(body, status)

    def idempotency_key(self) -> str | None:
        """The request's ``Idempotency-Key`` (passed on to the services, which check its form)."""
        return self.request.headers.get("Idempotency-Key") or None

    async def create(self, body: dict, fn, *args, **kwargs) -> None:
        """Answer a creation: 201 with what ``fn`` created, or, for a retry of a request with the
        same ``Idempotency-Key`` (``body`` the request as received), 200 with what the first
        request created (:class:`Creations`)."""
        key = self.idempotency_key()
        result, replayed = await CREATIONS.once(
            key, body, lambda: self.call(fn, *args, idempotency_key=key, **kwargs))
        if replayed:
            self.set_header("Idempotent-Replayed", "true")
        self.reply(result, 200 if replayed else 201)

    def json_body(self) -> dict:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise BadRequest("body", "is not valid JSON") from None
        if not isinstance(body, dict):
            raise BadRequest("body", "must be a JSON object")
        return body


def handles_errors(method):
    """Service errors, bad requests and a missing token become JSON answers."""

    @functools.wraps(method)
    async def wrapper(self: FlightbaseHandler, *args, **kwargs):
        try:
            return await method(self, *args, **kwargs)
        except ApiError as exc:
            status = exc.status or 502  # 0: the services could not be reached
            self.fail(status, exc.message, exc.field, exc.body.get("errors"))
        except BadRequest as exc:
            self.fail(422, f"{exc.field}: {exc.message}", exc.field)
        except ConfigError as exc:
            self.fail(503, str(exc))

    return tornado.web.authenticated(wrapper)


class ConfigHandler(FlightbaseHandler):
    @handles_errors
    async def get(self):
        info = await self.call(Client.info)
        self.reply({"workspace": os.environ.get("FLIGHTBASE_WORKSPACE") or None, "user": info["user"],
                    "lease": os.environ.get("FLIGHTBASE_LEASE_ID") or None,
                    "version": __version__, "gpu_kind": info["gpu_kind"]})


class WorkspacesHandler(FlightbaseHandler):
    @handles_errors
    async def get(self):
        self.reply(await self.call(Client.workspaces))


class OverviewHandler(FlightbaseHandler):
    @handles_errors
    async def get(self):
        ws = self.get_query_argument("workspace", "")
        if not ws:
            raise BadRequest("workspace", "name a workspace")

        def fetch(c: Client):
            # Client.workspace(c, ...): an instance's ``workspace`` attribute (its default
            # workspace) hides the method of the same name
            return views.overview(Client.workspace(c, ws), c.jobs(ws, limit=500), c.queue(ws), c.trainings(ws),
                                  c.info()["user"])

        self.reply(await self.call(fetch))


def notebook_to_script(path: Path, folder: Path) -> Path:
    """The notebook's code cells as a Python script (nbconvert), written into ``folder``."""
    from nbconvert.exporters import ScriptExporter

    source, resources = ScriptExporter().from_filename(str(path))
    target = folder / (path.stem + resources.get("output_extension", ".py"))
    target.write_text(source)
    return target


class TrainingsHandler(FlightbaseHandler):
    """POST: submit a file or folder of the server (``path``) as a training; a notebook
    is converted to a script first. The other fields are those of the trainings API."""

    def resolve(self, rel: str) -> Path:
        root = Path(self.settings.get("server_root_dir") or os.getcwd()).expanduser().resolve()
        path = (root / rel.lstrip("/")).resolve()
        if not rel or not path.is_relative_to(root) or not path.exists():
            raise BadRequest("path", f"{rel!r} is not a file or folder of this server")
        return path

    @handles_errors
    async def post(self):
        body = self.json_body()
        received = dict(body)
        ws = body.pop("workspace", None)
        if not ws:
            raise BadRequest("workspace", "name a workspace")
        rel = body.pop("path", None)
        if rel is None and not body.get("code_id"):
            raise BadRequest("path", "choose a script, a notebook or a folder")
        with tempfile.TemporaryDirectory() as tmp:
            code = None
            if rel is not None:
                path = self.resolve(rel)
                if path.suffix == ".ipynb":
                    path = notebook_to_script(path, Path(tmp))
                    if body.get("entrypoint") in (None, "", Path(rel).name):
                        body["entrypoint"] = path.name
                elif path.is_file() and path.suffix != ".py":
                    raise BadRequest("path", "submit a .py script, a .ipynb notebook or a folder")
                code = str(path)
            if not body.get("entrypoint"):
                body.pop("entrypoint", None)
                if code is None or not code.endswith(".py"):
                    raise BadRequest("entrypoint", "name the script to run inside the folder")
            if not body.get("name"):
                body.pop("name", None)
            await self.create(received, Client.submit, ws, code, **body)


class TrainingActionHandler(FlightbaseHandler):
    @handles_errors
    async def post(self, training_id: str, action: str):
        if action != "resubmit":
            self.reply(await self.call(Client.training_action, training_id, action))
            return

        def resubmit(c: Client):
            t = c.training(training_id)
            taken = {x["name"] for x in c.trainings(t["workspace"])}
            path, body = views.resubmit_request(t, views.next_name(t["name"], taken))
            return c.request("jobqueue", "POST", path, json=body)

        self.reply(await self.call(resubmit), 201)


class JobHandler(FlightbaseHandler):
    @handles_errors
    async def get(self, job_id: str):
        self.reply(await self.call(Client.job, job_id))


class JobLogsHandler(FlightbaseHandler):
    @handles_errors
    async def get(self, job_id: str):
        rank = self.get_query_argument("rank", None)
        text = await self.call(Client.logs, job_id, rank=int(rank) if rank and rank.isdigit() else None)
        lines = text.splitlines()
        self.reply({"text": "\n".join(lines[-LOG_LINES:]), "truncated": len(lines) > LOG_LINES})


class JobMetricsHandler(FlightbaseHandler):
    @handles_errors
    async def get(self, job_id: str):
        self.reply(await self.call(Client.metrics, job_id))


class JobCancelHandler(FlightbaseHandler):
    @handles_errors
    async def post(self, job_id: str):
        self.reply(await self.call(Client.cancel, job_id))


class BuiltinModelsHandler(FlightbaseHandler):
    @handles_errors
    async def get(self):
        self.reply(await self.call(Client.builtin_models))


class BuiltinTrainingsHandler(FlightbaseHandler):
    @handles_errors
    async def post(self):
        body = self.json_body()
        received = dict(body)
        for key in ("workspace", "model", "name"):
            if not body.get(key):
                raise BadRequest(key, "is required")
        ws, model, name = body.pop("workspace"), body.pop("model"), body.pop("name")
        await self.create(received, Client.builtin_train, ws, model, name, **body)


class RegistryHandler(FlightbaseHandler):
    @handles_errors
    async def get(self, workspace: str, kind: str):
        fn = Client.datasets if kind == "datasets" else Client.images
        self.reply(await self.call(fn, workspace))


ID = r"([A-Za-z0-9_.-]+)"

ROUTES = [
    ("config", ConfigHandler),
    ("workspaces", WorkspacesHandler),
    (f"workspaces/{ID}/(datasets|images)", RegistryHandler),
    ("overview", OverviewHandler),
    ("trainings", TrainingsHandler),
    (f"trainings/{ID}/(cancel|retry|pause|resume|resubmit)", TrainingActionHandler),
    (f"jobs/{ID}", JobHandler),
    (f"jobs/{ID}/logs", JobLogsHandler),
    (f"jobs/{ID}/metrics", JobMetricsHandler),
    (f"jobs/{ID}/cancel", JobCancelHandler),
    ("builtin-models", BuiltinModelsHandler),
    ("builtin-trainings", BuiltinTrainingsHandler),
]


def setup_handlers(web_app) -> None:
    base = url_path_join(web_app.settings["base_url"], "flightbase")
    web_app.add_handlers(".*$", [(url_path_join(base, path) + "$", handler) for path, handler in ROUTES])
