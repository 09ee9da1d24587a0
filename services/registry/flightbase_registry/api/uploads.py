"""Resumable, chunked uploads of a new dataset version.

The protocol (what the CLI and the browser page speak)::

    POST   .../datasets/{name}/uploads                       declare files (path, size, sha256) -> upload
    GET    .../datasets/{name}/uploads/{id}                  each file's offset: where to resume
    PATCH  .../datasets/{name}/uploads/{id}/files/{i}?offset=N   raw bytes of file i from offset N
    POST   .../datasets/{name}/uploads/{id}/direct            a data URL + ticket: the same PATCH, not through the proxy (direct.py)
    POST   .../datasets/{name}/uploads/{id}/commit           verify, extract, publish -> new version
    DELETE .../datasets/{name}/uploads/{id}                  cancel, remove what was staged

Quota and size limits are checked when the upload is declared (its bytes are
held until it commits or is cancelled). Chunks are streamed to the staging
area (never held whole in memory) and hashed as they arrive; a file whose last
byte arrives is checked against its declared SHA-256 at once. Commit extracts
archives safely, makes the files read-only and publishes the version with one
rename: readers see all of it or nothing. Any refusal at commit removes the
upload entirely.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import hashlib
import mmap
import os
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from flightbase.service.access import authorize
from flightbase.service.deps import CurrentIdentity, in_session
from flightbase.service.errors import ApiError, not_found
from flightbase import archives
from flightbase_registry import prometheus, storage
from flightbase_registry.api.common import get_dataset, refuse_over_quota, usage
from flightbase_registry.models import Dataset, DatasetVersion, Upload
from flightbase_registry.schemas import DirectOut, UploadCreate, UploadFileOut, UploadOut, VersionOut

router = APIRouter(tags=["datasets"])

BASE = "/workspaces/{workspace}/datasets/{name}/uploads"
# Bytes of body gathered by the event loop before a worker thread hashes them
# and copies them into the writer's buffers (_Appender). Small enough to stay
# in the CPU cache between the hash and the copy (8 MB batches measured ~30%
# more CPU per byte on the benchmark machine).
WRITE_BUFFER = 2 << 20


def _data_dir(request: Request) -> Path:
    return request.app.state.settings.data_dir


def _sum_path(data_dir: Path, upload_id: str, index: int) -> Path:
    return storage.upload_dir(data_dir, upload_id) / "sha256" / str(index)


def upload_out(data_dir: Path, up: Upload, dataset: str) -> UploadOut:
    files = []
    received = 0
    for i, f in enumerate(up.files):
        offset = storage.staged_size(storage.staged_file(data_dir, up.id, f["path"]))
        complete = offset == f["size"] and _sum_path(data_dir, up.id, i).exists()
        received += offset
        files.append(UploadFileOut(index=i, path=f["path"], size=f["size"], sha256=f.get("sha256"),
                                   extract=bool(f.get("extract")), offset=offset, complete=complete))
    return UploadOut(id=up.id, workspace=up.workspace, dataset=dataset, files=files, total_bytes=up.total_bytes,
                     received_bytes=received, message=up.message or "", created_by=up.created_by, created_at=up.created_at)


async def _get_upload(request: Request, dataset: Dataset, upload_id: str) -> Upload:
    up = await in_session(request, lambda s: s.get(Upload, upload_id))
    if up is None or up.dataset_id != dataset.id:
        raise not_found(f"upload {upload_id!r}")
    return up


@router.post(BASE, response_model=UploadOut, status_code=201)
async def create_upload(request: Request, identity: CurrentIdentity, workspace: str, name: str, body: UploadCreate):
    """Declare the files of a new version; answers where each one starts (offset 0)."""
    ws = await authorize(request, identity, workspace, "datasets:write")
    dataset = await get_dataset(request, workspace, name)
    limits = request.app.state.registry_settings
    try:
        archives.check_paths([f.path for f in body.files])
    except archives.UnsafeInput as exc:
        raise ApiError(422, exc.reason, field=exc.field) from None
    if len(body.files) > limits.max_files:
        raise ApiError(413, f"{len(body.files)} files is more than the limit of {limits.max_files} per version", field="files")
    for i, f in enumerate(body.files):
        if f.size > limits.max_file_bytes:
            raise ApiError(413, f"{f.path!r} is {f.size} bytes, more than the limit of {limits.max_file_bytes} per file",
                           field=f"files[{i}].size")
        if f.extract and not archives.is_archive(f.path):
            raise ApiError(422, f"{f.path!r} is not an archive ({', '.join(archives.ARCHIVE_SUFFIXES)}) and cannot be extracted",
                           field=f"files[{i}].extract")
    total = sum(f.size for f in body.files)
    row = Upload(id=uuid.uuid4().hex, dataset_id=dataset.id, workspace=workspace,
                 files=[f.model_dump() for f in body.files], total_bytes=total, message=body.message,
                 created_by=identity.name)

    def add(session):
        refuse_over_quota(usage(session, ws), total, "files", "this upload")
        session.add(row)
        session.flush()
        return row

    async with request.app.state.quota_lock:
        row = await in_session(request, add)
    data_dir = _data_dir(request)
    (storage.upload_dir(data_dir, row.id) / "files").mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(body.files):
        if f.size == 0:  # nothing to send: an empty file is complete at once
            empty = hashlib.sha256().hexdigest()
            if f.sha256 and f.sha256 != empty:
                await _discard(request, row.id)
                raise ApiError(422, f"{f.path!r} is empty, but its sha256 is not that of no bytes", field=f"files[{i}].sha256")
            target = storage.staged_file(data_dir, row.id, f.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()
            _sum_path(data_dir, row.id, i).parent.mkdir(parents=True, exist_ok=True)
            _sum_path(data_dir, row.id, i).write_text(empty)
    return upload_out(_data_dir(request), row, name)


@router.get(BASE, response_model=list[UploadOut])
async def list_uploads(request: Request, identity: CurrentIdentity, workspace: str, name: str):
    """Uploads in progress for this dataset (the CLI finds the one to resume here)."""
    await authorize(request, identity, workspace, "datasets:read")
    dataset = await get_dataset(request, workspace, name)
    stmt = select(Upload).where(Upload.dataset_id == dataset.id).order_by(Upload.created_at)
    rows = await in_session(request, lambda s: list(s.scalars(stmt)))
    return [upload_out(_data_dir(request), up, name) for up in rows]


@router.get(BASE + "/{upload_id}", response_model=UploadOut)
async def get_upload(request: Request, identity: CurrentIdentity, workspace: str, name: str, upload_id: str):
    await authorize(request, identity, workspace, "datasets:read")
    dataset = await get_dataset(request, workspace, name)
    return upload_out(_data_dir(request), await _get_upload(request, dataset, upload_id), name)


class _Hashers:
    """Running SHA-256 of each file being received, so a chunk costs one pass over its bytes.

    After a restart (or a chunk from another connection) the state is rebuilt
    by hashing what is already on disk.
    """

    def __init__(self):
        self._state: dict[tuple[str, int], tuple[int, "hashlib._Hash"]] = {}

    def take(self, key: tuple[str, int], path: Path, offset: int):
        held = self._state.pop(key, None)
        if held and held[0] == offset:
            return held[1]
        h = hashlib.sha256()
        if offset == 0:  # nothing to read (the first chunk creates the file)
            return h
        with open(path, "rb") as fh:
            left = offset
            while left:
                block = fh.read(min(left, 8 << 20))
                if not block:
                    break
                h.update(block)
                left -= len(block)
        return h

    def put(self, key, offset: int, h) -> None:
        self._state[key] = (offset, h)

    def drop(self, upload_id: str) -> None:
        for key in [k for k in self._state if k[0] == upload_id]:
            del self._state[key]


class _Appender:
    """Appends bytes to a staged file, hashing them as they go.

    Bytes arrive either as body pieces the event loop gathered (``write``) or
    straight from a socket (``receive``, the data endpoint in ``direct.py``).
    They fill a ring of ``RING`` page-aligned buffers of ``BUFFER`` bytes; a
    full buffer is handed to two threads of this file, one hashing it (SHA-256,
    in file order) and one writing it (in file order, so the file always grows
    contiguously), while the next buffer fills. A buffer is filled again only
    once both are done with it, so at most ``RING`` buffers are held per file
    whatever its size.

    Where the file system allows it the bytes go to disk with ``O_DIRECT``,
    bypassing the page cache: on the benchmark machine a buffered write costs
    about 2.5 s of kernel CPU per GB (page cache allocation and copying), a
    direct write about 0.15 s, and the data is on the disk when the write
    returns, so the fsync at commit has little left to do
    (docs/benchmarks.md). Bytes that cannot be written directly (the unaligned
    head when a chunk starts at an odd offset, the tail of a chunk, or
    everything where the file system refuses ``O_DIRECT``) go through the page
    cache with ``pwrite``; the kernel keeps the two coherent. On the buffered
    path the kernel is asked to start writing back behind the writes
    (``POSIX_FADV_DONTNEED``) so a large upload neither fills the page cache
    nor leaves the fsync much to do.
    """

    def __init__(self, path: Path, hasher, direct: bool = True):
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self.hasher = hasher
        self.offset = os.fstat(self.fd).st_size  # where byte 0 of the filling buffer goes in the file
        self.direct = _open_direct(path) if direct else None
        # an upload resumed at an odd offset: buffered writes up to the next aligned one
        self.gap = -self.offset % ALIGN if self.direct is not None else 0
        self.ring = [mmap.mmap(-1, BUFFER) for _ in range(RING)]  # page-aligned, as O_DIRECT needs
        self.busy: list[tuple[Future, ...]] = [() for _ in range(RING)]
        self.k = 0  # the buffer being filled
        self.fill = 0
        self.hashing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="upload-hash")
        self.writing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="upload-writer")
        self.write_error: BaseException | None = None  # the writer thread's first failure
        self.behind = self.flushed = self.offset  # writeback hints of the buffered path

    def write(self, parts: list[bytes]) -> None:
        """Append body pieces (copied into the ring)."""
        for part in parts:
            view = memoryview(part)
            if self.gap:
                view = view[self._write_gap(view):]
            while view:
                n = min(BUFFER - self.fill, len(view))
                self.ring[self.k][self.fill:self.fill + n] = view[:n]
                self.fill += n
                view = view[n:]
                if self.fill == BUFFER:
                    self._hand_over()

    def receive(self, readinto, length: int) -> int:
        """Append up to ``length`` bytes read with ``readinto(view)`` straight into the ring.

        Returns how many arrived: fewer than ``length`` when the sender stopped
        (``readinto`` gave 0 or failed), and what arrived is kept.
        """
        got = 0
        try:
            if self.gap and length:
                head = bytearray(min(self.gap, length))
                n = _read_full(readinto, memoryview(head))
                self._write_gap(memoryview(head)[:n])
                got += n
                if n < len(head):
                    return got
            while got < length:
                view = memoryview(self.ring[self.k])[self.fill:self.fill + min(BUFFER - self.fill, length - got)]
                n = _read_full(readinto, view)
                self.fill += n
                got += n
                if self.fill == BUFFER:
                    self._hand_over()
                if n < len(view):
                    break
        except (OSError, ValueError):  # the connection broke or timed out: keep what arrived
            pass
        return got

    def _write_gap(self, view: memoryview) -> int:
        """Hash and write (buffered) the head up to the first aligned offset; nothing is in flight yet."""
        n = min(self.gap, len(view))
        self.hasher.update(view[:n])
        _pwrite_all(self.fd, view[:n], self.offset)
        self.offset += n
        self.gap -= n
        return n

    def _submit(self) -> None:
        """Hash and write the filling buffer in the background."""
        view = memoryview(self.ring[self.k])[:self.fill]
        self.busy[self.k] = (self.hashing.submit(self.hasher.update, view),
                             self.writing.submit(self._write_out, view, self.offset))
        self.offset += self.fill
        self.fill = 0

    def _hand_over(self) -> None:
        """Submit the full buffer; go on with the next one once it is free."""
        self._submit()
        self.k = (self.k + 1) % RING
        done, self.busy[self.k] = self.busy[self.k], ()
        for f in done:
            f.result()

    def _write_out(self, view: memoryview, offset: int) -> None:
        """Write one buffer (in the writer thread). After a failed write the buffers queued behind it
        are refused too: writing them would leave a hole in the file, which a resumed upload would
        take for received bytes."""
        if self.write_error is not None:
            raise self.write_error
        try:
            self._write_at(view, offset)
        except BaseException as exc:
            self.write_error = exc
            raise

    def _write_at(self, view: memoryview, offset: int) -> None:
        aligned = len(view) - len(view) % ALIGN if self.direct is not None else 0
        if aligned:
            try:
                _pwrite_all(self.direct, view[:aligned], offset)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                # the file system refuses direct writes after all (it opened): page cache from now on
                os.close(self.direct)
                self.direct, aligned = None, 0
        if aligned < len(view):
            _pwrite_all(self.fd, view[aligned:], offset + aligned)
            if self.direct is None:
                end = offset + len(view)
                if end - self.flushed >= _WRITEBACK_EVERY:
                    os.posix_fadvise(self.fd, self.behind, end - self.behind, os.POSIX_FADV_DONTNEED)
                    self.behind, self.flushed = self.flushed, end

    def close(self) -> None:
        """Write what is held and close the file (the first error, if any, is raised after cleaning up)."""
        error = None
        try:
            if self.fill:
                self._submit()
        except BaseException as exc:  # noqa: BLE001 - raised below, after the threads are done
            error = exc
        for futures in self.busy:  # every hash and write in flight ends before the file closes
            for f in futures:
                exc = f.exception()
                error = error or exc
        self.busy = [() for _ in range(RING)]
        self.hashing.shutdown()
        self.writing.shutdown()
        for fd in (self.fd, self.direct):
            if fd is not None:
                os.close(fd)
        for buf in self.ring:
            try:
                buf.close()
            except BufferError:  # a view is still held by an error's traceback: freed with it
                pass
        if error is not None:
            raise error


def _read_full(readinto, view: memoryview) -> int:
    """Read into all of ``view`` unless the sender stops first; the number of bytes read."""
    got = 0
    while got < len(view):
        n = readinto(view[got:])
        if not n:
            break
        got += n
    return got


def _open_direct(path: Path) -> int | None:
    """A second descriptor with O_DIRECT, or None where the file system does not take it."""
    if not hasattr(os, "O_DIRECT"):
        return None
    try:
        return os.open(path, os.O_WRONLY | os.O_DIRECT | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):
            return None
        raise


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    while view:
        n = os.pwrite(fd, view, offset)
        offset += n
        view = view[n:]


# O_DIRECT needs the file offset, the length and the buffer's address aligned
# to the device's logical block size; 4096 covers 512- and 4096-byte devices.
ALIGN = 4096
BUFFER = 8 << 20  # bytes per disk write
RING = 4  # buffers per file being received: one filling, the others being hashed and written
_WRITEBACK_EVERY = 32 << 20


@router.patch(BASE + "/{upload_id}/files/{index}", response_model=UploadFileOut)
async def upload_chunk(
    request: Request, identity: CurrentIdentity, workspace: str, name: str, upload_id: str, index: int,
    offset: int = Query(ge=0, description="Where these bytes start in the file; must equal the file's current offset"),
):
    """Append the raw request body to file ``index`` at ``offset`` (resume with the offset GET reports).

    Where the registry has a data endpoint (``POST .../direct``), clients that
    can reach it send their chunks there instead, the same way: see direct.py.
    """
    await authorize(request, identity, workspace, "datasets:write")
    dataset = await get_dataset(request, workspace, name)
    up = await _get_upload(request, dataset, upload_id)
    state = request.app.state
    length = request.headers.get("content-length")
    with Chunk(state, up, index, offset, int(length) if length is not None and length.isdigit() else None) as chunk:
        await run_in_threadpool(chunk.open)
        await _pump(request, chunk)
        return await run_in_threadpool(chunk.finish)


@router.post(BASE + "/{upload_id}/direct", response_model=DirectOut)
async def direct_ticket(request: Request, identity: CurrentIdentity, workspace: str, name: str, upload_id: str):
    """A data URL and a short-lived ticket to send this upload's chunks straight to the registry's data endpoint."""
    await authorize(request, identity, workspace, "datasets:write")
    dataset = await get_dataset(request, workspace, name)
    up = await _get_upload(request, dataset, upload_id)
    server = request.app.state.data_server
    if server is None:
        raise ApiError(404, "this registry has no data endpoint (registry_data_port is 0): "
                            "send the chunks with PATCH .../files/{index}")
    token, expires = server.tickets.issue(up.id, identity.name)
    base = request.app.state.registry_settings.data_url or f"http://{_host_of(request)}:{server.port}"
    return DirectOut(url=f"{base}/uploads/{up.id}", token=token, expires_at=expires)


def _host_of(request: Request) -> str:
    """The host name the client reached the hub by (the proxy passes Host on): the data endpoint is on that host."""
    host = urlsplit("//" + request.headers.get("host", "")).hostname or request.app.state.settings.ip
    return f"[{host}]" if ":" in host else host


class Chunk:
    """One chunk request for one staged file, whichever way its bytes come.

    ``with Chunk(...)`` claims the file (one writer at a time) and checks the
    offset and the declared length; ``open`` gets the running hash and the
    writer; the bytes are appended with ``sink``; ``finish`` closes the
    writer, checks the size and, with the last byte, the checksum, and returns
    the file's state. Every refusal is an ``ApiError`` naming the field.
    """

    def __init__(self, state, up: Upload, index: int, offset: int, length: int | None):
        if not 0 <= index < len(up.files):
            raise ApiError(404, f"upload {up.id!r} has no file number {index} (it has {len(up.files)})", field="index")
        self.state, self.up, self.index, self.start = state, up, index, offset
        self.declared = up.files[index]
        self.size = self.declared["size"]
        self.data_dir: Path = state.settings.data_dir
        self.path = storage.staged_file(self.data_dir, up.id, self.declared["path"])
        self.key = (up.id, index)
        self.length = length
        self.position = offset  # where the next byte goes
        self.too_much = False
        self.sink: _Appender | None = None
        self.hasher = None

    def __enter__(self) -> "Chunk":
        locks: dict = self.state.upload_locks
        if locks.setdefault(self.key, self) is not self:  # atomic: the event loop and the data endpoint's threads share it
            raise ApiError(409, f"file {self.index} of upload {self.up.id!r} is already being written by another request",
                           field="index")
        try:
            self._check()
        except BaseException:
            locks.pop(self.key, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self.sink is not None:  # an error before finish: never leave the writer's threads behind
                sink, self.sink = self.sink, None
                sink.close()
        finally:
            self.state.upload_locks.pop(self.key, None)
            # flightbase_upload_bytes_total: what this request stored, whichever road it came by
            prometheus.count_upload(self.up.workspace, self.position - self.start)

    def _check(self) -> None:
        current = storage.staged_size(self.path)
        if self.start != current:
            raise ApiError(409, f"offset: file {self.index} has {current} bytes; send the chunk at offset={current}", field="offset")
        if self.length is not None and self.start + self.length > self.size:
            raise ApiError(413, f"this chunk ends at byte {self.start + self.length} but {self.declared['path']!r} "
                                f"was declared with {self.size} bytes", field="body")
        if self.length is not None and self.length > self.state.registry_settings.max_chunk_bytes:
            raise ApiError(413, f"a chunk may carry at most {self.state.registry_settings.max_chunk_bytes} bytes", field="body")

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.hasher = self.state.hashers.take(self.key, self.path, self.start)
        self.sink = _Appender(self.path, self.hasher, bool(self.state.registry_settings.direct_writes))

    def finish(self) -> UploadFileOut:
        sink, self.sink = self.sink, None
        sink.close()
        hashers: _Hashers = self.state.hashers
        path, declared, size = self.path, self.declared, self.size
        if self.too_much:
            # the bytes of this request beyond the declared size are refused; what fit is kept
            hashers.put(self.key, self.position, self.hasher)
            raise ApiError(413, f"more bytes than the {size} declared for {declared['path']!r}; kept {self.position}",
                           field="body")
        if self.position < size:
            hashers.put(self.key, self.position, self.hasher)
        else:
            digest = self.hasher.hexdigest()
            if declared.get("sha256") and declared["sha256"] != digest:
                os.truncate(path, 0)
                raise ApiError(
                    422,
                    f"checksum mismatch for {declared['path']!r}: declared sha256 {declared['sha256']}, received {digest}; "
                    "the file was discarded, send it again from offset 0",
                    field=f"files[{self.index}].sha256",
                )
            sum_file = _sum_path(self.data_dir, self.up.id, self.index)
            sum_file.parent.mkdir(parents=True, exist_ok=True)
            sum_file.write_text(digest)
        return UploadFileOut(index=self.index, path=declared["path"], size=size, sha256=declared.get("sha256"),
                             extract=bool(declared.get("extract")), offset=self.position, complete=self.position == size)


async def _pump(request: Request, chunk: Chunk) -> None:
    """Stream the request body into the chunk's writer.

    The event loop gathers the body's pieces while a worker thread copies the
    previous batch into the writer's ring (whose own threads hash and write
    it): at most two batches are held, whatever the chunk size.
    """
    sink = chunk.sink
    pending: asyncio.Future | None = None
    parts: list[bytes] = []
    gathered = 0
    try:
        try:
            async for piece in request.stream():
                if not piece:
                    continue
                if chunk.position + gathered + len(piece) > chunk.size:
                    chunk.too_much = True
                    break
                parts.append(piece)
                gathered += len(piece)
                if gathered >= WRITE_BUFFER:
                    if pending is not None:
                        await pending
                    batch, parts, chunk.position, gathered = parts, [], chunk.position + gathered, 0
                    pending = asyncio.ensure_future(run_in_threadpool(sink.write, batch))
        except ClientDisconnect:
            pass  # keep what arrived: the client resumes from the offset GET reports
        if pending is not None:
            await pending
        if parts:
            await run_in_threadpool(sink.write, parts)
            chunk.position += gathered
    finally:
        if pending is not None:  # an error above: never close the file under a batch still being copied
            await asyncio.wait([pending])
            if not pending.cancelled():
                pending.exception()


@router.delete(BASE + "/{upload_id}", status_code=204)
async def cancel_upload(request: Request, identity: CurrentIdentity, workspace: str, name: str, upload_id: str):
    """Cancel an upload: its staged bytes are removed and its quota hold released."""
    await authorize(request, identity, workspace, "datasets:write")
    dataset = await get_dataset(request, workspace, name)
    up = await _get_upload(request, dataset, upload_id)
    await _discard(request, up.id)
    return Response(status_code=204)


async def _discard(request: Request, upload_id: str) -> None:
    request.app.state.hashers.drop(upload_id)
    await run_in_threadpool(storage.remove_tree, storage.upload_dir(_data_dir(request), upload_id))

    def delete(session):
        row = session.get(Upload, upload_id)
        if row is not None:
            session.delete(row)

    await in_session(request, delete)


@router.post(BASE + "/{upload_id}/commit", response_model=VersionOut, status_code=201)
async def commit_upload(request: Request, identity: CurrentIdentity, workspace: str, name: str, upload_id: str):
    """Verify every file, extract archives, and publish the files as the dataset's next version."""
    ws = await authorize(request, identity, workspace, "datasets:write")
    dataset = await get_dataset(request, workspace, name)
    up = await _get_upload(request, dataset, upload_id)
    data_dir = _data_dir(request)
    state = upload_out(data_dir, up, name)
    missing = [f for f in state.files if not f.complete]
    if missing:
        f = missing[0]
        raise ApiError(409, f"{len(missing)} file(s) incomplete, first {f.path!r}: {f.offset} of {f.size} bytes received",
                       field=f"files[{f.index}]")
    limits = request.app.state.registry_settings
    async with request.app.state.quota_lock:
        allowance = await in_session(request, lambda s: usage(s, ws, except_upload=up.id).available_bytes)
        try:
            assembled, manifest = await run_in_threadpool(_assemble, data_dir, up, limits, allowance)
        except archives.UnsafeInput as exc:
            await _discard(request, up.id)
            raise ApiError(exc.status, f"{exc.reason}; the upload was cancelled and nothing was kept", field=exc.field) from None
        except Exception:
            await _discard(request, up.id)
            raise

        def publish(session):
            number = (session.scalar(select(func.max(DatasetVersion.number)).where(DatasetVersion.dataset_id == dataset.id)) or 0) + 1
            row = DatasetVersion(id=uuid.uuid4().hex[:16], dataset_id=dataset.id, workspace=workspace, number=number,
                                 size_bytes=sum(m["size"] for m in manifest), file_count=len(manifest), manifest=manifest,
                                 message=up.message or "", created_by=identity.name,
                                 created_at=dt.datetime.now(dt.timezone.utc))
            session.add(row)
            session.delete(session.get(Upload, up.id))
            session.flush()
            # the rename is the last step inside the transaction: if it fails the row is rolled back
            storage.publish(assembled, storage.version_dir(data_dir, workspace, name, number))
            return row

        version = await in_session(request, publish)
    request.app.state.hashers.drop(up.id)
    await run_in_threadpool(storage.remove_tree, storage.upload_dir(data_dir, up.id))
    return VersionOut(workspace=workspace, dataset=name, version=version.number, size_bytes=version.size_bytes,
                      file_count=version.file_count, message=version.message, created_by=version.created_by,
                      created_at=version.created_at, in_use_by=[])


def _assemble(data_dir: Path, up: Upload, limits, allowance: int | None) -> tuple[Path, list[dict]]:
    """Turn the staged files into a version folder (not yet visible) and its manifest."""
    root = storage.upload_dir(data_dir, up.id)
    staged = root / "files"
    assembled = root / "version"
    if assembled.exists():  # a commit that failed half-way before: start again from the staged files
        storage.remove_tree(assembled)
    os.rename(staged, assembled)
    try:
        manifest: dict[str, dict] = {}
        to_extract = []
        for i, f in enumerate(up.files):
            sha = _sum_path(data_dir, up.id, i).read_text().strip()
            if f.get("extract"):
                to_extract.append((i, f))
            else:
                manifest[f["path"]] = {"path": f["path"], "size": f["size"], "sha256": sha}
        budget = min(limits.max_extract_bytes, allowance if allowance is not None else limits.max_extract_bytes)
        budget -= sum(m["size"] for m in manifest.values())
        for i, f in to_extract:
            archive = assembled / f["path"]
            out_dir = root / f"extract-{i}"
            field = f"files[{i}]"
            ex_limits = archives.ExtractLimits(max_bytes=max(0, budget), max_files=limits.max_files - len(manifest),
                                             max_ratio=limits.max_compression_ratio)
            extracted = archives.extract(archive, out_dir, ex_limits, field)
            budget -= extracted.total
            os.unlink(archive)
            folder = str(Path(f["path"]).parent)
            prefix = "" if folder == "." else folder + "/"
            for member, size, sha in extracted.files:
                rel = prefix + member
                target = assembled / rel
                if rel in manifest or target.exists():
                    raise archives.UnsafeInput(field, f"archive member {member!r} would replace {rel!r}, which is already in the version")
                target.parent.mkdir(parents=True, exist_ok=True)
                os.rename(out_dir / member, target)
                manifest[rel] = {"path": rel, "size": size, "sha256": sha}
            storage.remove_tree(out_dir)
        storage.fsync_tree(assembled)
        storage.make_read_only(assembled)
        return assembled, sorted(manifest.values(), key=lambda m: m["path"])
    except Exception:
        storage.remove_tree(assembled)
        raise
