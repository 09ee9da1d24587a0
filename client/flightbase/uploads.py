"""The client side of the registry's upload protocol: what ``flightbase datasets upload`` speaks.

The protocol (the routes are the registry's, services/registry/flightbase_registry/api/uploads.py):
declare the files (path, size, sha256), send each file in chunks from the
offset the service reports, then commit. Running the same :func:`upload`
again after an interruption resumes the matching upload in progress where it
stopped. Chunks go to the registry's data endpoint when it has one and this
client can reach it (:class:`Route`, ``POST .../direct``), else with ``PATCH``
through the hub's API (:func:`send_chunk`); over plain HTTP the file's pages
go to the socket with ``sendfile``.

Client-side only: this module imports no service (tests/unit/test_client_imports.py),
so it moves with the client when the client installs alone (#19). ``c`` is a
:class:`flightbase.client.Client`. Errors raise ``ValueError`` or
:class:`flightbase.client.ApiError`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

CHUNK = 256 << 20  # bytes per PATCH request (fewer request turnarounds; an interrupted one keeps what arrived)
READ = 4 << 20


def human(n: float | None) -> str:
    """A byte count (or rate) for people, in powers of 1000: 1.2 GB."""
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
        sys.stderr.write(f"\r{self.label} [{bar:<25}] {pct:5.1f}% {human(self.done)}/{human(self.total)} {human(rate)}/s ")
        sys.stderr.flush()

    def finish(self) -> None:
        if not self.quiet:
            self.add(0, force=True)
            sys.stderr.write("\n")


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


def chunks(fh, length: int):
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
                sys.stderr.write(f"resuming upload {pending['id']}: {human(pending['received_bytes'])} already there\n")
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
        blocks = chunks(fh, length)
        return c.request("registry", "PATCH", path, params={"offset": offset},
                         content=Counting(blocks, progress) if progress else blocks,
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


class Counting:
    """The blocks of ``blocks``, each counted on ``progress`` as it goes out."""

    def __init__(self, blocks, progress: Progress):
        self.blocks, self.progress = blocks, progress

    def __iter__(self):
        for block in self.blocks:
            self.progress.add(len(block))
            yield block
