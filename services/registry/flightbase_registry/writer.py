"""The registry's upload writer: chunks of a declared upload in, a version folder out.

Both roads a chunk takes share it: ``PATCH .../uploads/{id}/files/{i}``
through the hub's proxy (api/uploads.py, the event loop gathers the body) and
the data endpoint (direct.py, a worker thread reads the socket). Neither knows
how the bytes reach the disk; this module does not know HTTP. What is inside,
in the order a chunk meets it:

- :class:`UploadWriter`: one per registry process (``app.state.writer``),
  holding the staging area, the limits that apply to a chunk, which files
  are being written (one request at a time per file) and the running hashes.
  It prepares a declared upload (:meth:`UploadWriter.stage`), reports each
  file's offset (:meth:`UploadWriter.files`), opens a :class:`Chunk` and
  assembles the staged files into a version at commit
  (:meth:`UploadWriter.assemble`).
- :class:`Chunk`: one chunk request for one staged file: claims the file,
  checks the offset and the declared length, appends, and with the file's
  last byte checks its SHA-256. Every refusal is an ``ApiError`` naming the
  field, which the routes answer as they are.
- :class:`Hashers`: the running SHA-256 of each file being received, so a
  chunk costs one pass over its bytes; rebuilt from the disk when missing.
- :class:`Appender`: the writer of one chunk: a ring of page-aligned
  buffers, a hashing thread and a writing thread, ``O_DIRECT`` where the
  file system takes it.

Tested piece by piece, on real files, in tests/registry/test_writer.py and
tests/registry/test_staging.py.
"""

from __future__ import annotations

import errno
import hashlib
import mmap
import os
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Protocol, Sequence

from flightbase import archives
from flightbase_server.service.errors import ApiError
from flightbase_registry import prometheus, storage
from flightbase_registry.schemas import UploadFileOut

CLOSED_KEPT = 4096  # committed or cancelled uploads whose late chunks UploadWriter refuses


class DeclaredUpload(Protocol):
    """What the writer reads of an upload (``models.Upload``): its id, workspace and declared files
    (each a dict with ``path``, ``size`` and optionally ``sha256`` and ``extract``)."""

    id: str
    workspace: str
    files: Sequence[dict]


class UploadWriter:
    """The staging area's writer, shared by the API's routes and the data endpoint's threads.

    ``max_chunk_bytes``: the most one chunk request may carry (413 beyond).
    ``direct_writes``: write with ``O_DIRECT`` where the file system allows it
    (``RegistrySettings.direct_writes``).
    """

    def __init__(self, data_dir: Path, *, max_chunk_bytes: int, direct_writes: bool = True):
        self.data_dir = Path(data_dir)
        self.max_chunk_bytes = max_chunk_bytes
        self.direct_writes = direct_writes
        self.hashers = Hashers()
        # (upload id, file index) -> the Chunk writing it; setdefault on a dict is atomic, and the
        # event loop and the data endpoint's threads share it
        self.locks: dict[tuple[str, int], Chunk] = {}
        # uploads being committed or cancelled, newest last: a chunk of one is refused, so that a
        # request that found the upload before it was closed cannot make its folder again after
        # the folder was removed (the most recent CLOSED_KEPT are enough: only requests already
        # in flight when an upload closed can still name it)
        self.closed: OrderedDict[str, None] = OrderedDict()

    def close(self, upload_id: str) -> None:
        """Refuse every chunk of ``upload_id`` from now on (it is being committed or cancelled).

        The caller then waits until ``busy`` is false: a chunk registers itself in ``locks``
        before it looks here, and this marks before the caller looks at ``locks``, so each
        chunk either is refused or is waited for."""
        self.closed[upload_id] = None
        while len(self.closed) > CLOSED_KEPT:
            self.closed.popitem(last=False)

    def busy(self, upload_id: str) -> bool:
        """Whether a request is writing a file of ``upload_id`` right now."""
        return any(key[0] == upload_id for key in list(self.locks))

    def sum_path(self, upload_id: str, index: int) -> Path:
        """Where a complete file's checked SHA-256 is kept: its presence marks the file complete."""
        return storage.upload_dir(self.data_dir, upload_id) / "sha256" / str(index)

    def stage(self, up: DeclaredUpload) -> None:
        """Make a declared upload's staging folder; its empty files are complete at once (nothing to send).

        ``ApiError`` 422 when an empty file's declared SHA-256 is not that of no bytes (the caller
        removes the upload: what was made here is in its folder)."""
        (storage.upload_dir(self.data_dir, up.id) / "files").mkdir(parents=True, exist_ok=True)
        empty = hashlib.sha256().hexdigest()
        for i, f in enumerate(up.files):
            if f["size"] != 0:
                continue
            if f.get("sha256") and f["sha256"] != empty:
                raise ApiError(422, f"{f['path']!r} is empty, but its sha256 is not that of no bytes", field=f"files[{i}].sha256")
            target = storage.staged_file(self.data_dir, up.id, f["path"])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()
            sum_file = self.sum_path(up.id, i)
            sum_file.parent.mkdir(parents=True, exist_ok=True)
            sum_file.write_text(empty)

    def files(self, up: DeclaredUpload) -> list[UploadFileOut]:
        """Each declared file's state on disk: its offset (where to resume) and whether it is complete."""
        out = []
        for i, f in enumerate(up.files):
            offset = storage.staged_size(storage.staged_file(self.data_dir, up.id, f["path"]))
            complete = offset == f["size"] and self.sum_path(up.id, i).exists()
            out.append(UploadFileOut(index=i, path=f["path"], size=f["size"], sha256=f.get("sha256"),
                                     extract=bool(f.get("extract")), offset=offset, complete=complete))
        return out

    def chunk(self, up: DeclaredUpload, index: int, offset: int, length: int | None) -> "Chunk":
        """A chunk of file ``index`` starting at ``offset``, of ``length`` bytes (None: unknown); use it with ``with``."""
        return Chunk(self, up, index, offset, length)

    def drop(self, upload_id: str) -> None:
        """Forget an upload's running hashes (it was committed or cancelled)."""
        self.hashers.drop(upload_id)

    def assemble(self, up: DeclaredUpload, limits, allowance: int | None) -> tuple[Path, list[dict]]:
        """Turn the complete staged files into a version folder (not yet visible) and its manifest.

        Archives marked ``extract`` are extracted under ``limits`` (``RegistrySettings``: the most
        bytes, files and compression ratio) and within ``allowance`` (the workspace's bytes left, None:
        no quota); ``archives.UnsafeInput`` when one is refused. The folder is fsynced and read-only.
        """
        data_dir = self.data_dir
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
                sha = self.sum_path(up.id, i).read_text().strip()
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


class Chunk:
    """One chunk request for one staged file, whichever way its bytes come.

    ``with writer.chunk(...)`` claims the file (one writer at a time) and checks the
    offset and the declared length; ``open`` gets the running hash and the
    writer; the bytes are appended with ``sink`` (``Appender.write`` or
    ``Appender.receive``), and ``position`` advanced by what was appended;
    ``finish`` closes the writer, checks the size and, with the last byte, the
    checksum, and returns the file's state. Every refusal is an ``ApiError``
    naming the field. Leaving the ``with`` block closes a writer left open and
    counts the bytes stored (``flightbase_upload_bytes_total``).
    """

    def __init__(self, writer: UploadWriter, up: DeclaredUpload, index: int, offset: int, length: int | None):
        if not 0 <= index < len(up.files):
            raise ApiError(404, f"upload {up.id!r} has no file number {index} (it has {len(up.files)})", field="index")
        self.writer, self.up, self.index, self.start = writer, up, index, offset
        self.declared = up.files[index]
        self.size = self.declared["size"]
        self.path = storage.staged_file(writer.data_dir, up.id, self.declared["path"])
        self.key = (up.id, index)
        self.length = length
        self.position = offset  # where the next byte goes
        self.too_much = False  # the sender had more bytes than the file was declared with
        self.sink: Appender | None = None
        self.hasher = None

    def __enter__(self) -> "Chunk":
        locks = self.writer.locks
        if locks.setdefault(self.key, self) is not self:
            raise ApiError(409, f"file {self.index} of upload {self.up.id!r} is already being written by another request",
                           field="index")
        try:
            if self.up.id in self.writer.closed:
                raise ApiError(404, f"upload {self.up.id!r} was committed or cancelled", field="upload_id")
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
            self.writer.locks.pop(self.key, None)
            # flightbase_upload_bytes_total: what this request stored, whichever road it came by
            prometheus.count_upload(self.up.workspace, self.position - self.start)

    def _check(self) -> None:
        current = storage.staged_size(self.path)
        if self.start != current:
            raise ApiError(409, f"offset: file {self.index} has {current} bytes; send the chunk at offset={current}", field="offset")
        if self.length is not None and self.start + self.length > self.size:
            raise ApiError(413, f"this chunk ends at byte {self.start + self.length} but {self.declared['path']!r} "
                                f"was declared with {self.size} bytes", field="body")
        if self.length is not None and self.length > self.writer.max_chunk_bytes:
            raise ApiError(413, f"a chunk may carry at most {self.writer.max_chunk_bytes} bytes", field="body")

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.hasher = self.writer.hashers.take(self.key, self.path, self.start)
        self.sink = Appender(self.path, self.hasher, bool(self.writer.direct_writes))

    def finish(self) -> UploadFileOut:
        sink, self.sink = self.sink, None
        sink.close()
        hashers = self.writer.hashers
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
            sum_file = self.writer.sum_path(self.up.id, self.index)
            sum_file.parent.mkdir(parents=True, exist_ok=True)
            sum_file.write_text(digest)
        return UploadFileOut(index=self.index, path=declared["path"], size=size, sha256=declared.get("sha256"),
                             extract=bool(declared.get("extract")), offset=self.position, complete=self.position == size)


class Hashers:
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


class Appender:
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
    """Read into all of ``view`` unless the sender stops first; the number of bytes read.

    A connection that breaks or times out (``OSError``, or ``ValueError`` from a closed file) after
    some bytes came ends the read like an end of body: those bytes count (before #19 they were
    dropped with the exception, up to a buffer's worth, and the client sent them again)."""
    got = 0
    try:
        while got < len(view):
            n = readinto(view[got:])
            if not n:
                break
            got += n
    except (OSError, ValueError):
        if not got:
            raise
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
