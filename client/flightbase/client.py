"""The Python client of the Flightbase services, used by the CLI and in notebooks.

It finds the hub and a token the way a notebook cell would: FLIGHTBASE_URL and
FLIGHTBASE_TOKEN if set, else the single-user server's JUPYTERHUB_API_URL and
JUPYTERHUB_API_TOKEN. The default workspace is FLIGHTBASE_WORKSPACE (the
spawner sets it in each single-user server).
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any
from urllib.parse import urlparse

import httpx


RETRY_STATUSES = frozenset({502, 503, 504})  # the proxy's answers while a service restarts
ENDED = ("succeeded", "failed", "cancelled")  # a job's states once it has ended


class ApiError(Exception):
    """A 3xx/4xx/5xx answer from a service (:func:`api_error`), with the field it concerns when there
    is one."""

    def __init__(self, status: int, message: str, field: str | None = None, body: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.body = body or {}


class ConfigError(Exception):
    pass


def api_error(resp: httpx.Response) -> ApiError:
    """The :class:`ApiError` of an answer that is not a success (3xx, 4xx, 5xx).  The services
    answer JSON (``message``, and ``field`` where one is concerned) and never redirect; anything
    else is the hub's or the proxy's own: the hub's redirect of a service path it does not route
    (yet, while the platform starts) and its HTML 404 page there, or a 503 while the service
    restarts.  Said in one line, not the page's HTML."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "message" not in body:
        path = resp.request.url.path if resp.request is not None else ""
        service = path.split("/services/", 1)[1].split("/", 1)[0] if "/services/" in path else ""
        what = f"{resp.status_code} {resp.reason_phrase}".strip()
        message = (f"the {service} service did not answer ({what}); if the platform is starting or "
                   f"restarting, try again in a moment" if service else f"{what} from {path or 'the server'}")
        body = {"message": message}
    return ApiError(resp.status_code, body.get("message", "error"), body.get("field"), body)


def _hub_base(environ) -> str:
    url = environ.get("FLIGHTBASE_URL")
    if url:
        return url.rstrip("/")
    api = environ.get("JUPYTERHUB_API_URL")
    if api:
        parsed = urlparse(api)
        return f"{parsed.scheme}://{parsed.netloc}"
    return "http://127.0.0.1:8000"


class Client:
    def __init__(self, url: str | None = None, token: str | None = None, *, timeout: float = 30.0, environ=None):
        environ = os.environ if environ is None else environ
        self.url = (url or _hub_base(environ)).rstrip("/")
        self.token = token or environ.get("FLIGHTBASE_TOKEN") or environ.get("JUPYTERHUB_API_TOKEN")
        if not self.token:
            raise ConfigError("no API token: set FLIGHTBASE_TOKEN (from `flightbase up` or /hub/token)")
        self._http = httpx.Client(timeout=timeout, headers={"Authorization": f"token {self.token}"})
        self.default_workspace = environ.get("FLIGHTBASE_WORKSPACE") or None

    def close(self) -> None:
        self._http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def request(self, service: str, method: str, path: str, *, retries: int = 0, **kwargs) -> Any:
        """One API call. With ``retries``, a request that got no answer (the connection failed or timed
        out) or a 502/503/504 (the service restarting behind the proxy) is sent again, up to that many
        times, after 0.5, 1, 2... s: only for requests that are safe to repeat (an idempotency key)."""
        url = f"{self.url}/services/{service}/api/v1/{path.lstrip('/')}"
        for attempt in range(retries + 1):
            last = attempt == retries
            try:
                resp = self._http.request(method, url, **kwargs)
            except httpx.HTTPError as exc:
                if last:
                    raise ApiError(0, f"cannot reach {self.url}: {exc}") from None
            else:
                if last or resp.status_code not in RETRY_STATUSES:
                    break
            time.sleep(min(0.5 * 2 ** attempt, 8.0))
        if resp.status_code >= 300:  # (a redirect is the hub's, for a service it does not route)
            raise api_error(resp)
        if resp.status_code == 204 or not resp.content:
            return None
        return resp.json()

    # --- jobqueue
    def info(self) -> dict:
        return self.request("jobqueue", "GET", "info")

    def workspaces(self) -> list[dict]:
        return self.request("jobqueue", "GET", "workspaces")

    def workspace(self, name: str) -> dict:
        return self.request("jobqueue", "GET", f"workspaces/{name}")

    def create_workspace(self, name: str, **settings) -> dict:
        return self.request("jobqueue", "POST", "workspaces", json={"name": name, "settings": settings})

    def update_workspace(self, name: str, **settings) -> dict:
        return self.request("jobqueue", "PATCH", f"workspaces/{name}/settings", json=settings)

    def add_member(self, workspace: str, user: str) -> dict:
        return self.request("jobqueue", "PUT", f"workspaces/{workspace}/members/{user}")

    def remove_member(self, workspace: str, user: str) -> dict:
        return self.request("jobqueue", "DELETE", f"workspaces/{workspace}/members/{user}")

    def resolve_workspace(self, workspace: str | None = None) -> str:
        """``workspace`` if given, else FLIGHTBASE_WORKSPACE, else the caller's only workspace."""
        if workspace:
            return workspace
        if self.default_workspace:
            return self.default_workspace
        mine = [w["name"] for w in self.workspaces()]
        if len(mine) == 1:
            return mine[0]
        raise ValueError("workspace: give a workspace (or set FLIGHTBASE_WORKSPACE); you are in "
                         + (", ".join(mine) if mine else "no workspace"))

    def trainings(self, workspace: str | None = None) -> list[dict]:
        params = {"workspace": workspace} if workspace else {}
        return self.request("jobqueue", "GET", "trainings", params=params)

    # --- trainings and jobs
    def upload_code(self, workspace: str, path: str) -> dict:
        filename, data = pack_code(path)
        return self.request("jobqueue", "POST", "code", params={"workspace": workspace, "filename": filename}, content=data)

    def upload_files(self, workspace: str, files: dict[str, bytes], folder: str | None = None) -> dict:
        """Upload ``files`` (name -> content), on top of ``folder``'s files when given, as one code archive."""
        filename, data = pack_files(files, folder)
        return self.request("jobqueue", "POST", "code", params={"workspace": workspace, "filename": filename}, content=data)

    def sweep(self, workspace: str, code: str | None = None, *, grid: dict | None = None, runs: list[dict] | None = None,
              parallel: int = 1, metric: str | None = None, goal: str = "min", **spec) -> dict:
        """A sweep: one job per combination of ``grid`` (or per entry of ``runs``), ``parallel`` at a time."""
        sweep = {k: v for k, v in {"grid": grid, "runs": runs, "parallel": parallel, "metric": metric, "goal": goal}.items()
                 if v is not None}
        return self.submit(workspace, code, sweep=sweep, **spec)

    def submit(self, workspace: str, code: str | None = None, *, entrypoint: str | None = None, name: str | None = None,
               idempotency_key: str | None = None, retries: int = 4, **spec) -> dict:
        """Create a training: ``code`` is a script, an archive or a folder, uploaded first.

        ``spec`` takes the fields of the trainings API: ``args``, ``gpus``,
        ``gpus_per_node``, ``launcher``, ``image``, ``datasets``, ``env``,
        ``secret_env``, ``max_runtime``, ``priority``, ``preemptible``, ``gpudirect_p2p``,
        ``gpudirect_rdma``, ``sweep`` (``{"grid": {...}, "parallel": 1, "metric": "loss"}``).

        ``secret_env`` (``{"NAME": "value"}``) reaches the job as environment
        variables like ``env``, but is write-only: no answer of the API shows the
        values again, to anyone (the training names them in ``secret_env_names``).

        The request carries an ``Idempotency-Key`` (``idempotency_key``, or a new UUID), so it is
        sent again up to ``retries`` times when its answer is lost (a timeout, the jobqueue
        restarting) without ever creating the training twice.
        """
        import os.path

        body = {"workspace": workspace, **{k: v for k, v in spec.items() if v is not None}}
        if code is not None:
            body["code_id"] = self.upload_code(workspace, code)["id"]
            if entrypoint is None and os.path.isfile(code) and code.endswith(".py"):
                entrypoint = os.path.basename(code)
        if entrypoint is None:
            raise ValueError("entrypoint: name the script to run inside the code")
        body["entrypoint"] = entrypoint
        body["name"] = name or os.path.splitext(os.path.basename(entrypoint))[0].replace("_", "-")
        return self._create("trainings", body, idempotency_key, retries)

    def _create(self, path: str, body: dict, idempotency_key: str | None, retries: int) -> dict:
        """POST a creation with an ``Idempotency-Key`` (``idempotency_key``, or a new UUID), sent
        again with the same key when the answer is lost (:meth:`request`'s ``retries``)."""
        return self.request("jobqueue", "POST", path, json=body, retries=retries,
                            headers={"Idempotency-Key": idempotency_key or uuid.uuid4().hex})

    def training(self, training_id: str) -> dict:
        return self.request("jobqueue", "GET", f"trainings/{training_id}")

    def training_action(self, training_id: str, action: str) -> dict:
        return self.request("jobqueue", "POST", f"trainings/{training_id}/{action}")

    def jobs(self, workspace: str | None = None, *, training: str | None = None, state: str | None = None,
             limit: int = 100) -> list[dict]:
        params = {k: v for k, v in {"workspace": workspace, "training": training, "state": state, "limit": limit}.items() if v is not None}
        return self.request("jobqueue", "GET", "jobs", params=params)

    def job(self, job_id: str) -> dict:
        return self.request("jobqueue", "GET", f"jobs/{job_id}")

    def queue(self, workspace: str | None = None) -> list[dict]:
        return self.request("jobqueue", "GET", "queue", params={"workspace": workspace} if workspace else {})

    def cancel(self, job_id: str) -> dict:
        return self.request("jobqueue", "POST", f"jobs/{job_id}/cancel")

    def metrics(self, job_id: str) -> list[dict]:
        return self.request("jobqueue", "GET", f"jobs/{job_id}/metrics")

    def logs(self, job_id: str, *, rank: int | None = None, follow: bool = False):
        """The job's output: a string, or with ``follow=True`` an iterator of text as it comes."""
        params = {"follow": "true" if follow else "false"}
        if rank is not None:
            params["rank"] = rank
        url = f"{self.url}/services/jobqueue/api/v1/jobs/{job_id}/logs"
        if not follow:
            resp = self._http.get(url, params=params)
            if resp.status_code >= 300:
                raise api_error(resp)
            return resp.text
        return self._follow(url, params)

    def _follow(self, url: str, params: dict):
        with self._http.stream("GET", url, params=params, timeout=None) as resp:
            if resp.status_code >= 300:
                resp.read()
                raise api_error(resp)
            yield from resp.iter_text()

    def wait(self, job_id: str, timeout: float | None = None, interval: float = 1.0) -> dict:
        """Poll until the job has ended; return it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["state"] in ENDED:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {job['state']}")
            time.sleep(interval)

    def usage(self, workspace: str | None = None, *, start: str | None = None, end: str | None = None,
              group_by: str | list[str] | None = None, csv: bool = False):
        """GPU usage in ``[start, end)`` (ISO dates or datetimes; default the last 30 days) per group of
        ``workspace``, ``user`` and/or ``day``: the API's JSON, or with ``csv=True`` its CSV text."""
        if isinstance(group_by, (list, tuple)):
            group_by = ",".join(group_by)
        params = {k: v for k, v in {"workspace": workspace, "from": start, "to": end, "group_by": group_by,
                                    "format": "csv" if csv else None}.items() if v is not None}
        if not csv:
            return self.request("jobqueue", "GET", "usage", params=params)
        try:
            resp = self._http.get(f"{self.url}/services/jobqueue/api/v1/usage", params=params)
        except httpx.HTTPError as exc:
            raise ApiError(0, f"cannot reach {self.url}: {exc}") from None
        if resp.status_code >= 300:
            raise api_error(resp)
        return resp.text

    # --- built-in models
    def builtin_models(self) -> list[dict]:
        """The catalogue: each model's manifest (parameters, dataset layout, GPUs, launchers)."""
        return self.request("jobqueue", "GET", "builtin-models")

    def builtin_train(self, workspace: str, model: str, name: str, *, idempotency_key: str | None = None,
                      retries: int = 4, **fields) -> dict:
        """Train a built-in model: ``fields`` are those of POST /builtin-trainings
        (``dataset``, ``params``, ``gpus``, ``launcher``, ``options``, ``image``, ``max_runtime``...).
        Retried with one ``Idempotency-Key`` as :meth:`submit` is."""
        body = {"workspace": workspace, "model": model, "name": name, **{k: v for k, v in fields.items() if v is not None}}
        return self._create("builtin-trainings", body, idempotency_key, retries)

    # --- registry
    def datasets(self, workspace: str) -> list[dict]:
        return self.request("registry", "GET", f"workspaces/{workspace}/datasets")

    def images(self, workspace: str) -> list[dict]:
        return self.request("registry", "GET", f"workspaces/{workspace}/images")


def pack_code(path: str) -> tuple[str, bytes]:
    """(filename, bytes) to upload for a script, an archive, or a folder (packed as .tar.gz)."""
    from pathlib import Path

    p = Path(path)
    if not p.exists():
        raise ValueError(f"code: {path} does not exist")
    if p.is_file():
        return p.name, p.read_bytes()
    return f"{p.name or 'code'}.tar.gz", _tar_gz(p, {})


def code_files(folder) -> list:
    """The files of ``folder`` that go into its code archive: hidden ones and ``__pycache__`` stay out."""
    from pathlib import Path

    p = Path(folder)
    return [child for child in sorted(p.rglob("*"))
            if child.is_file() and "__pycache__" not in child.parts
            and not any(part.startswith(".") for part in child.relative_to(p).parts)]


def pack_files(files: dict[str, bytes], folder: str | None = None) -> tuple[str, bytes]:
    """(filename, bytes) of a .tar.gz holding ``folder``'s code files (if any) and ``files`` (name -> content)."""
    from pathlib import Path

    if folder is not None and not Path(folder).is_dir():
        raise ValueError(f"code: {folder} is not a folder")
    return "code.tar.gz", _tar_gz(Path(folder) if folder is not None else None, files)


def _tar_gz(folder, files: dict[str, bytes]) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        if folder is not None:
            for child in code_files(folder):
                arcname = str(child.relative_to(folder))
                if arcname not in files:
                    tar.add(child, arcname=arcname, recursive=False)
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(content), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()

