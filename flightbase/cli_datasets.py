"""``flightbase datasets ...`` and ``flightbase images ...``: the registry from the command line.

``flightbase/cli.py`` wires these in with ``cli_datasets.add_parsers(sub)``.
Uploads use the registry's chunked protocol: declare the files (path, size,
sha256), send each file in chunks from the offset the service reports, then
commit. Run the same ``upload`` again after an interruption and it resumes
the matching upload in progress where it stopped. Errors raise ``ValueError``
or :class:`flightbase.client.ApiError`; ``cli.main`` prints them on one line
and exits with code 2.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

from flightbase.cli_common import table, workspace_arg

CHUNK = 256 << 20  # bytes per PATCH request (fewer request turnarounds; an interrupted one keeps what arrived)
READ = 4 << 20


def add_parsers(subparsers) -> None:
    ds = subparsers.add_parser("datasets", help="list, create, upload, download and delete datasets and versions")
    ds_sub = ds.add_subparsers(dest="action", required=True, parser_class=type(ds))

    p = ds_sub.add_parser("list", help="datasets of a workspace, with storage used")
    workspace_arg(p)
    p.add_argument("--json", action="store_true")
    p = ds_sub.add_parser("create", help="create an empty dataset")
    workspace_arg(p)
    p.add_argument("name")
    p.add_argument("--description", default="")
    p = ds_sub.add_parser("upload", help="upload files or a folder as the dataset's next version (resumable)")
    workspace_arg(p)
    p.add_argument("path", nargs="+", help="files or folders; a folder's files keep their paths below it")
    p.add_argument("-d", "--dataset", help="dataset name (default: the name of the first PATH); created if missing")
    p.add_argument("-m", "--message", default="", help="what changed in this version")
    p.add_argument("--extract", action="store_true", help="extract .zip / .tar.gz / .tgz / .tar archives on the server")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p = ds_sub.add_parser("versions", help="versions of a dataset")
    workspace_arg(p)
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p = ds_sub.add_parser("download", help="download a version (a tar of it, or one file)")
    workspace_arg(p)
    p.add_argument("name")
    p.add_argument("--version", default="latest", help="number or 'latest' (default)")
    p.add_argument("--file", help="download only this file of the version")
    p.add_argument("-o", "--output", help="where to write (default: <name>-v<N>.tar or the file's name)")
    p = ds_sub.add_parser("delete", help="delete a dataset, or one version with --version (workspace managers)")
    workspace_arg(p)
    p.add_argument("name")
    p.add_argument("--version", help="delete only this version")
    ds.set_defaults(func=cmd_datasets)

    im = subparsers.add_parser("images", help="list, register and upload images")
    im_sub = im.add_subparsers(dest="action", required=True, parser_class=type(im))
    p = im_sub.add_parser("list", help="built-in and workspace images")
    workspace_arg(p)
    p.add_argument("--json", action="store_true")
    p = im_sub.add_parser("register", help="register an image by reference (registry/name:tag)")
    workspace_arg(p)
    p.add_argument("name")
    p.add_argument("reference")
    p.add_argument("--description", default="")
    p.add_argument("--framework", action="append", default=[], dest="frameworks")
    p = im_sub.add_parser("upload", help="upload a `docker save` or OCI layout tar; pushed to the platform's registry")
    workspace_arg(p)
    p.add_argument("archive")
    p.add_argument("name")
    p.add_argument("--tag", default="latest")
    p.add_argument("--description", default="")
    p.add_argument("--framework", action="append", default=[], dest="frameworks")
    p.add_argument("--quiet", action="store_true")
    im.set_defaults(func=cmd_images)


# --- output

def _human(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


class Progress:
    """One self-rewriting stderr line: bytes done, total, rate."""

    def __init__(self, total: int, label: str, quiet: bool = False):
        self.total, self.label, self.done = total, label, 0
        self.quiet = quiet or not total
        self.start = time.monotonic()
        self._last = 0.0

    def add(self, n: int, force: bool = False) -> None:
        self.done += n
        now = time.monotonic()
        if self.quiet or (not force and now - self._last < 0.2):
            return
        self._last = now
        rate = self.done / max(now - self.start, 1e-6)
        pct = 100 * self.done / self.total
        bar = "#" * int(pct / 4)
        sys.stderr.write(f"\r{self.label} [{bar:<25}] {pct:5.1f}% {_human(self.done)}/{_human(self.total)} {_human(rate)}/s ")
        sys.stderr.flush()

    def finish(self) -> None:
        if not self.quiet:
            self.add(0, force=True)
            sys.stderr.write("\n")


# --- commands

def _client():
    from flightbase.client import Client

    return Client(timeout=600.0)


def _ws(args) -> str:
    if not args.workspace:
        raise ValueError("workspace: name one with --workspace (or set FLIGHTBASE_WORKSPACE)")
    return args.workspace


def cmd_datasets(args) -> int:
    with _client() as c:
        ws = _ws(args)
        base = f"workspaces/{quote(ws)}/datasets"
        if args.action == "list":
            rows = c.request("registry", "GET", base)
            if args.json:
                print(json.dumps(rows, indent=1))
                return 0
            for r in rows:
                r["size"] = _human(r.get("size_bytes"))
            table(rows, ["name", "latest_version", "versions", "size", "description"])
            st = c.request("registry", "GET", f"workspaces/{quote(ws)}/storage")
            quota = _human(st["quota_bytes"]) if st["quota_bytes"] is not None else "no quota"
            print(f"\nstorage: {_human(st['used_bytes'])} used of {quota}")
        elif args.action == "create":
            print(json.dumps(c.request("registry", "POST", base, json={"name": args.name, "description": args.description}), indent=1))
        elif args.action == "upload":
            version = upload(c, ws, args.dataset or _default_name(args.path[0]), [Path(p) for p in args.path],
                             message=args.message, extract=args.extract, quiet=args.quiet)
            print(f"{version['dataset']} version {version['version']}: {version['file_count']} files, {_human(version['size_bytes'])}")
        elif args.action == "versions":
            rows = c.request("registry", "GET", f"{base}/{quote(args.name)}/versions")
            if args.json:
                print(json.dumps(rows, indent=1))
                return 0
            for r in rows:
                r["size"] = _human(r["size_bytes"])
                r["in_use_by"] = ",".join(r["in_use_by"])
            table(rows, ["version", "file_count", "size", "created_by", "created_at", "in_use_by", "message"])
        elif args.action == "download":
            download(c, ws, args.name, args.version, args.file, args.output)
        elif args.action == "delete":
            if args.version:
                c.request("registry", "DELETE", f"{base}/{quote(args.name)}/versions/{quote(args.version)}")
                print(f"deleted version {args.version} of {args.name}")
            else:
                c.request("registry", "DELETE", f"{base}/{quote(args.name)}")
                print(f"deleted dataset {args.name}")
    return 0


def _default_name(path: str) -> str:
    name = Path(path).resolve().name.lower()
    for suffix in (".tar.gz", ".tgz", ".zip", ".tar"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def collect(paths: list[Path]) -> list[tuple[str, Path]]:
    """(path in the dataset, local file) for every file under the given files and folders."""
    out: list[tuple[str, Path]] = []
    for root in paths:
        if not root.exists():
            raise ValueError(f"path: {str(root)!r} does not exist")
        if root.is_file():
            out.append((root.name, root))
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                local = Path(dirpath) / name
                if local.is_symlink():
                    raise ValueError(f"path: {str(local)!r} is a symbolic link; datasets hold files only")
                out.append((local.relative_to(root).as_posix(), local))
    if not out:
        raise ValueError("path: no files to upload")
    return out


def _sha256(path: Path, progress: Progress) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(READ):
            h.update(block)
            progress.add(len(block))
    return h.hexdigest()


def _chunks(fh, length: int):
    left = length
    while left:
        block = fh.read(min(READ, left))
        if not block:
            raise ValueError("a file changed (got shorter) while it was being uploaded")
        left -= len(block)
        yield block


def upload(c, ws: str, dataset: str, paths: list[Path], *, message: str = "", extract: bool = False,
           quiet: bool = False) -> dict:
    from flightbase.client import ApiError

    files = collect(paths)
    base = f"workspaces/{quote(ws)}/datasets/{quote(dataset)}"
    try:
        c.request("registry", "GET", base)
    except ApiError as exc:
        if exc.status != 404 or not exc.message.startswith("dataset"):
            raise
        c.request("registry", "POST", f"workspaces/{quote(ws)}/datasets", json={"name": dataset})
    total = sum(local.stat().st_size for _, local in files)
    hashing = Progress(total, "checksums", quiet)
    declared = []
    for rel, local in files:
        declared.append({"path": rel, "size": local.stat().st_size, "sha256": _sha256(local, hashing),
                         "extract": extract and rel.lower().endswith((".zip", ".tar.gz", ".tgz", ".tar"))})
    hashing.finish()
    # resume an upload in progress of exactly these files, if there is one
    state = None
    for pending in c.request("registry", "GET", f"{base}/uploads"):
        if [(f["path"], f["size"], f["sha256"], f["extract"]) for f in pending["files"]] == \
                [(d["path"], d["size"], d["sha256"], d["extract"]) for d in declared]:
            state = pending
            if not quiet:
                sys.stderr.write(f"resuming upload {pending['id']}: {_human(pending['received_bytes'])} already there\n")
            break
    if state is None:
        state = c.request("registry", "POST", f"{base}/uploads", json={"files": declared, "message": message})
    progress = Progress(total, f"upload {dataset}", quiet)
    progress.add(state["received_bytes"])
    route = Route(c, f"{base}/uploads/{state['id']}")
    for f, (_rel, local) in zip(state["files"], files):
        offset = f["offset"]
        with open(local, "rb") as fh:
            while offset < f["size"]:
                length = min(CHUNK, f["size"] - offset)
                offset = route.send(f["index"], fh, offset, length, progress)["offset"]
    progress.finish()
    return c.request("registry", "POST", f"{base}/uploads/{state['id']}/commit")


class Route:
    """Where one upload's chunks go: the registry's data endpoint when it has one and this
    client can reach it (``POST .../direct``), else ``PATCH`` through the hub's API.

    A ticket refused with 401 (expired, or the registry restarted) is renewed
    once; an endpoint that cannot be reached is given up for the API. Either
    way the chunk is sent again from the offset the service reports, so
    nothing is sent twice and nothing is skipped.
    """

    def __init__(self, c, upload_path: str):
        self.c, self.upload_path = c, upload_path
        hub = urlsplit(c.url)
        self.ticket = self._new_ticket() if hub.scheme == "http" and not _proxied(hub.hostname or "") else None

    def _new_ticket(self) -> dict | None:
        """A data URL and ticket for this upload; None where the registry has no data endpoint (404)."""
        from flightbase.client import ApiError

        try:
            return self.c.request("registry", "POST", f"{self.upload_path}/direct")
        except ApiError as exc:
            if exc.status != 404:
                raise
            return None

    def send(self, index: int, fh, offset: int, length: int, progress: Progress | None = None) -> dict:
        from flightbase.client import ApiError

        api_path = f"{self.upload_path}/files/{index}"
        done_before = progress.done if progress else 0
        for attempt in range(2):
            if self.ticket is None:
                return send_chunk(self.c, api_path, fh, offset, length, progress)
            url = urlsplit(f"{self.ticket['url']}/files/{index}?offset={offset}")
            try:
                return _sendfile_patch(url, f"Bearer {self.ticket['token']}", fh, offset, length, progress,
                                       _timeout(self.c), f"the registry's data endpoint {self.ticket['url']}")
            except ApiError as exc:
                if exc.status == 401 and attempt == 0:
                    self.ticket = self._new_ticket()
                elif exc.status == 0:  # the data endpoint cannot be reached from here: through the API
                    self.ticket = None
                else:
                    raise
            # the chunk again, from wherever the service says this file now ends
            state = self.c.request("registry", "GET", self.upload_path)
            sent = state["files"][index]["offset"]
            if progress:  # count what the service kept, not what was sent
                progress.add(done_before + sent - offset - progress.done)
                done_before = progress.done
            length -= sent - offset
            offset = sent
            if length <= 0:
                return state["files"][index]
        return send_chunk(self.c, api_path, fh, offset, length, progress)


def send_chunk(c, path: str, fh, offset: int, length: int, progress: Progress | None = None) -> dict:
    """PATCH ``length`` bytes of the open file ``fh`` from ``offset`` to the registry's ``path``; its JSON answer.

    Over plain HTTP without a proxy in the environment the body goes with
    ``sendfile`` (the kernel hands the file's pages to the socket: no copy
    through this process, about 0.5 s of CPU less per GB on the benchmark
    machine, docs/benchmarks.md); otherwise, and over HTTPS, through the
    client's own connection in blocks of ``READ`` bytes.
    """
    url = f"{c.url}/services/registry/api/v1/{path}?offset={offset}"
    parsed = urlsplit(url)
    if parsed.scheme != "http" or _proxied(parsed.hostname or ""):
        fh.seek(offset)
        blocks = _chunks(fh, length)
        return c.request("registry", "PATCH", path, params={"offset": offset},
                         content=_Counting(blocks, progress) if progress else blocks,
                         headers={"Content-Type": "application/octet-stream", "Content-Length": str(length)})
    return _sendfile_patch(parsed, f"token {c.token}", fh, offset, length, progress, _timeout(c), c.url)


def _proxied(host: str) -> bool:
    import urllib.request

    proxies = urllib.request.getproxies()
    return bool(proxies.get("http") or proxies.get("all")) and not urllib.request.proxy_bypass(host)


def _sendfile_patch(url, authorization: str, fh, offset: int, length: int, progress: Progress | None,
                    timeout: float | None, name: str) -> dict:
    """PATCH the file's bytes to ``url`` with ``sendfile``; its JSON answer (``ApiError`` for a 4xx/5xx,
    status 0 when ``url`` cannot be reached; ``name`` is what the message calls the server)."""
    import http.client

    from flightbase.client import ApiError

    conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=timeout)
    try:
        try:
            conn.connect()
        except OSError as exc:
            raise ApiError(0, f"cannot reach {name}: {exc}") from None
        try:
            conn.putrequest("PATCH", f"{url.path}?{url.query}", skip_accept_encoding=True)
            conn.putheader("Authorization", authorization)
            conn.putheader("Content-Type", "application/octet-stream")
            conn.putheader("Content-Length", str(length))
            conn.endheaders()
            sent = 0
            while sent < length:  # in steps, for the progress line
                n = conn.sock.sendfile(fh, offset + sent, min(READ * 4, length - sent))
                if not n:
                    raise ValueError("a file changed (got shorter) while it was being uploaded")
                sent += n
                if progress:
                    progress.add(n)
        except OSError:
            pass  # the service may have answered (and closed) before taking the whole body: read its answer
        try:
            resp = conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise ApiError(0, f"cannot reach {name}: {exc}") from None
    finally:
        conn.close()
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        body = {"message": raw[:200].decode(errors="replace") or resp.reason}
    if resp.status >= 400:
        raise ApiError(resp.status, body.get("message", "error"), body.get("field"), body)
    return body


def _timeout(c) -> float | None:
    t = getattr(getattr(c, "_http", None), "timeout", None)
    return getattr(t, "read", None) or 600.0


class _Counting:
    def __init__(self, blocks, progress: Progress):
        self.blocks, self.progress = blocks, progress

    def __iter__(self):
        for block in self.blocks:
            self.progress.add(len(block))
            yield block


def download(c, ws: str, name: str, version: str, file: str | None, output: str | None) -> None:
    from flightbase.client import ApiError

    base = f"{c.url}/services/registry/api/v1/workspaces/{quote(ws)}/datasets/{quote(name)}/versions/{quote(version)}"
    if file:
        url, target = f"{base}/files/{quote(file)}", Path(output or Path(file).name)
    else:
        v = c.request("registry", "GET", f"workspaces/{quote(ws)}/datasets/{quote(name)}/versions/{quote(version)}")
        url, target = f"{base}/archive", Path(output or f"{name}-v{v['version']}.tar")
    with c._http.stream("GET", url) as resp:
        if resp.status_code >= 400:
            resp.read()
            body = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
            raise ApiError(resp.status_code, body.get("message", resp.reason_phrase), body.get("field"), body)
        tmp = target.with_name(target.name + ".part")
        with open(tmp, "wb") as out:
            for block in resp.iter_bytes(READ):
                out.write(block)
        os.replace(tmp, target)
    print(f"wrote {target}")


def cmd_images(args) -> int:
    with _client() as c:
        ws = _ws(args)
        base = f"workspaces/{quote(ws)}/images"
        if args.action == "list":
            rows = c.request("registry", "GET", base)
            if args.json:
                print(json.dumps(rows, indent=1))
                return 0
            for r in rows:
                r["frameworks"] = ",".join(r["frameworks"])
            table(rows, ["name", "reference", "frameworks", "source", "created_by"])
            if rows:
                print(f"\nimages run as: {rows[0]['runs_as']}")
        elif args.action == "register":
            body = {"name": args.name, "reference": args.reference, "description": args.description,
                    "frameworks": args.frameworks}
            print(json.dumps(c.request("registry", "POST", base, json=body), indent=1))
        elif args.action == "upload":
            archive = Path(args.archive)
            if not archive.is_file():
                raise ValueError(f"archive: {args.archive!r} is not a file")
            size = archive.stat().st_size
            progress = Progress(size, f"upload {args.name}", args.quiet)
            params = {"name": args.name, "tag": args.tag, "description": args.description, "frameworks": args.frameworks}
            with open(archive, "rb") as fh:
                out = c.request("registry", "POST", f"{base}/upload", params=params,
                                content=_Counting(_chunks(fh, size), progress),
                                headers={"Content-Type": "application/x-tar", "Content-Length": str(size)})
            progress.finish()
            print(json.dumps(out, indent=1))
    return 0
