"""The registry's upload writer, piece by piece (``flightbase_registry.writer``; issue #19, item 6).

No platform and no HTTP: each test runs the real writer on real files in the
test's temporary folder. What the routes and the data endpoint add (who may
write, the database rows) is tested through them in test_datasets.py,
test_direct.py and test_direct_limits.py; the ring of buffers at odd offsets
and after a failed write in test_staging.py. The one failure no real file
gives on demand, a full disk, comes from a real device: the staged file is a
link to ``/dev/full``, which refuses every write with ENOSPC.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import tarfile
from types import SimpleNamespace

import pytest

from flightbase import archives
from flightbase_server.service.errors import ApiError
from flightbase_registry import storage
from flightbase_registry.direct import chunk_range
from flightbase_registry.writer import BUFFER, Appender, Hashers, UploadWriter

GB = 1_000_000_000


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def declared(*files: tuple[str, bytes], bad_sha: bool = False, extract: bool = False) -> SimpleNamespace:
    """An upload as the writer reads it (``models.Upload``): id, workspace and declared files."""
    return SimpleNamespace(id="u" * 32, workspace="ws", files=[
        {"path": p, "size": len(d), "sha256": sha(b"other" if bad_sha else d), "extract": extract} for p, d in files])


@pytest.fixture
def writer(tmp_path) -> UploadWriter:
    return UploadWriter(tmp_path, max_chunk_bytes=1 * GB)


def send(writer: UploadWriter, up, index: int, offset: int, data: bytes, length: int | None = -1):
    """One chunk as the API's route sends it: body pieces, then finish; the file's state."""
    with writer.chunk(up, index, offset, len(data) if length == -1 else length) as chunk:
        chunk.open()
        if chunk.position + len(data) > chunk.size:
            fit = chunk.size - chunk.position
            chunk.too_much, data = True, data[:fit]
        chunk.sink.write([data[i:i + 1000] for i in range(0, len(data), 1000)])
        chunk.position += len(data)
        return chunk.finish()


def receive(writer: UploadWriter, up, index: int, offset: int, length: int, readinto):
    """One chunk as the data endpoint sends it: read straight from a socket (here ``readinto``)."""
    with writer.chunk(up, index, offset, length) as chunk:
        chunk.open()
        chunk.position += chunk.sink.receive(readinto, length)
        return chunk.finish()


# --- a chunk, through the writer

def test_chunks_make_a_complete_file_whose_checksum_is_kept(writer):
    data = os.urandom(3 * 4096 + 17)
    up = declared(("a/b.bin", data))
    writer.stage(up)
    assert [(f.offset, f.complete) for f in writer.files(up)] == [(0, False)]
    first = send(writer, up, 0, 0, data[:5000])
    assert (first.offset, first.complete) == (5000, False)
    last = send(writer, up, 0, 5000, data[5000:])
    assert (last.offset, last.complete) == (len(data), True)
    assert storage.staged_file(writer.data_dir, up.id, "a/b.bin").read_bytes() == data
    assert writer.sum_path(up.id, 0).read_text() == sha(data)
    assert [(f.offset, f.complete) for f in writer.files(up)] == [(len(data), True)]
    assert writer.locks == {}


def test_a_bad_checksum_discards_the_file(writer):
    data = os.urandom(10_000)
    up = declared(("f", data), bad_sha=True)
    writer.stage(up)
    with pytest.raises(ApiError) as err:
        send(writer, up, 0, 0, data)
    assert err.value.status == 422 and err.value.field == "files[0].sha256"
    assert "send it again from offset 0" in err.value.message
    assert [(f.offset, f.complete) for f in writer.files(up)] == [(0, False)]
    assert not writer.sum_path(up.id, 0).exists()
    assert writer.locks == {}


def test_a_chunk_at_another_offset_than_the_files_end_is_refused(writer):
    data = os.urandom(8000)
    up = declared(("f", data))
    writer.stage(up)
    send(writer, up, 0, 0, data[:3000])
    for offset in (0, 2999, 3001):
        with pytest.raises(ApiError) as err:
            send(writer, up, 0, offset, data[offset:])
        assert (err.value.status, err.value.field) == (409, "offset")
        assert "send the chunk at offset=3000" in err.value.message
    assert send(writer, up, 0, 3000, data[3000:]).complete


def test_a_short_chunk_keeps_what_arrived_and_the_next_one_resumes_there(writer):
    """The sender stops mid-body (``readinto`` gives 0): the bytes that came are kept and hashed."""
    data = os.urandom(BUFFER + 5000)
    up = declared(("f", data))
    writer.stage(up)
    body = io.BytesIO(data[:BUFFER + 100])  # declares every byte, sends fewer
    state = receive(writer, up, 0, 0, len(data), body.readinto)
    assert (state.offset, state.complete) == (BUFFER + 100, False)
    rest = io.BytesIO(data[BUFFER + 100:])
    state = receive(writer, up, 0, BUFFER + 100, len(data) - BUFFER - 100, rest.readinto)
    assert state.complete and writer.sum_path(up.id, 0).read_text() == sha(data)


def test_a_broken_connection_keeps_what_arrived(writer):
    data = os.urandom(20_000)
    up = declared(("f", data))
    writer.stage(up)
    body = io.BytesIO(data[:7000])

    def readinto(view):
        n = body.readinto(view)
        if not n:
            raise TimeoutError("timed out")  # what a socket with a timeout raises (an OSError)
        return n

    assert receive(writer, up, 0, 0, len(data), readinto).offset == 7000
    assert storage.staged_file(writer.data_dir, up.id, "f").read_bytes() == data[:7000]


def test_more_bytes_than_declared_are_refused_and_what_fit_is_kept(writer):
    data = os.urandom(5000)
    up = declared(("f", data))
    writer.stage(up)
    with pytest.raises(ApiError) as err:  # the length is known at once: nothing is written
        send(writer, up, 0, 0, data + b"x", length=len(data) + 1)
    assert (err.value.status, err.value.field) == (413, "body")
    with pytest.raises(ApiError) as err:  # the length is not known (no Content-Length): what fits is kept
        send(writer, up, 0, 0, data + b"extra", length=None)
    assert (err.value.status, err.value.field) == (413, "body") and "kept 5000" in err.value.message
    assert storage.staged_file(writer.data_dir, up.id, "f").read_bytes() == data


def test_a_chunk_over_the_limit_and_a_file_number_out_of_range_are_refused(tmp_path):
    writer = UploadWriter(tmp_path, max_chunk_bytes=100)
    up = declared(("f", b"x" * 1000))
    writer.stage(up)
    with pytest.raises(ApiError) as err:
        send(writer, up, 0, 0, b"x" * 101)
    assert (err.value.status, err.value.field) == (413, "body") and "at most 100 bytes" in err.value.message
    assert send(writer, up, 0, 0, b"x" * 100).offset == 100
    for index in (1, -1):
        with pytest.raises(ApiError) as err:
            writer.chunk(up, index, 0, 1)
        assert (err.value.status, err.value.field) == (404, "index")


def test_one_request_at_a_time_writes_a_file(writer):
    up = declared(("f", b"x" * 100), ("g", b"y" * 100))
    writer.stage(up)
    with writer.chunk(up, 0, 0, 10):
        with pytest.raises(ApiError) as err:
            with writer.chunk(up, 0, 0, 10):
                pass
        assert (err.value.status, err.value.field) == (409, "index")
        assert send(writer, up, 1, 0, b"y" * 100).complete  # another file of the same upload may
    assert writer.locks == {}


def test_a_closed_upload_refuses_late_chunks_and_is_not_made_again(writer):
    """A request that found the upload before a cancel removed its folder (the CI failure of
    2026-12-01: a PATCH whose sender broke off reached the writer after the DELETE) is refused and
    makes no folder; one already writing when the upload closed is what ``busy`` waits for."""
    up = declared(("f", b"x" * 100))
    writer.stage(up)
    root = storage.upload_dir(writer.data_dir, up.id)
    with writer.chunk(up, 0, 0, 10):
        writer.close(up.id)
        assert writer.busy(up.id)  # the cancel waits for this one
    assert not writer.busy(up.id)
    storage.remove_tree(root)
    with pytest.raises(ApiError) as err:
        send(writer, up, 0, 0, b"x" * 10)
    assert (err.value.status, err.value.field) == (404, "upload_id")
    assert not root.exists() and writer.locks == {}
    other = declared(("f", b"y"))
    other.id = "o" * 32
    writer.stage(other)
    assert send(writer, other, 0, 0, b"y").complete  # other uploads are not affected


def test_only_the_latest_closed_uploads_are_remembered(writer, monkeypatch):
    monkeypatch.setattr("flightbase_registry.writer.CLOSED_KEPT", 3)
    for i in range(5):
        writer.close(f"{i:032d}")
    assert list(writer.closed) == [f"{i:032d}" for i in (2, 3, 4)]


def test_a_full_disk_fails_the_chunk_and_frees_the_file(writer):
    """ENOSPC from a real device (``/dev/full``) in the writer's thread reaches the caller."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    data = os.urandom(BUFFER + 10)
    up = declared(("f", data))
    writer.stage(up)
    os.symlink("/dev/full", storage.staged_file(writer.data_dir, up.id, "f"))
    with pytest.raises(OSError) as err:
        send(writer, up, 0, 0, data)
    assert err.value.errno == errno.ENOSPC
    assert writer.locks == {} and not writer.sum_path(up.id, 0).exists()


# --- stage and assemble

def test_empty_files_are_complete_when_declared(writer):
    up = declared(("empty", b""), ("full", b"abc"))
    writer.stage(up)
    assert [(f.offset, f.complete) for f in writer.files(up)] == [(0, True), (0, False)]
    bad = declared(("empty", b""), bad_sha=True)
    bad.id = "b" * 32
    with pytest.raises(ApiError) as err:
        writer.stage(bad)
    assert (err.value.status, err.value.field) == (422, "files[0].sha256")


def test_assemble_makes_a_read_only_version_with_its_manifest(writer):
    members = io.BytesIO()
    with tarfile.open(fileobj=members, mode="w") as tar:
        info = tarfile.TarInfo("inner/x.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    plain, archive = b"plain bytes", members.getvalue()
    up = declared(("p.txt", plain))
    up.files.append({"path": "sub/a.tar", "size": len(archive), "sha256": sha(archive), "extract": True})
    writer.stage(up)
    send(writer, up, 0, 0, plain)
    send(writer, up, 1, 0, archive)
    limits = SimpleNamespace(max_extract_bytes=GB, max_files=10, max_compression_ratio=200)
    folder, manifest = writer.assemble(up, limits, allowance=None)
    assert manifest == [{"path": "p.txt", "size": len(plain), "sha256": sha(plain)},
                        {"path": "sub/inner/x.txt", "size": 5, "sha256": sha(b"hello")}]
    assert (folder / "sub/inner/x.txt").read_bytes() == b"hello" and not (folder / "sub/a.tar").exists()
    assert not os.stat(folder / "p.txt").st_mode & 0o222


def test_assemble_refuses_an_archive_over_the_allowance_and_keeps_nothing(writer):
    members = io.BytesIO()
    with tarfile.open(fileobj=members, mode="w") as tar:
        info = tarfile.TarInfo("big.bin")
        info.size = 4096
        tar.addfile(info, io.BytesIO(b"\0" * 4096))
    archive = members.getvalue()
    up = declared(("a.tar", archive), extract=True)
    writer.stage(up)
    send(writer, up, 0, 0, archive)
    limits = SimpleNamespace(max_extract_bytes=GB, max_files=10, max_compression_ratio=200)
    with pytest.raises(archives.UnsafeInput) as err:
        writer.assemble(up, limits, allowance=1000)
    assert err.value.field == "files[0]" and err.value.status == 413
    assert not (storage.upload_dir(writer.data_dir, up.id) / "version").exists()


# --- the hashers

def test_hashers_continue_a_running_hash_or_rebuild_it_from_the_disk(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    hashers = Hashers()
    assert hashers.take(("u", 0), path, 0).hexdigest() == sha(b"")
    running = hashlib.sha256(b"01234")
    hashers.put(("u", 0), 5, running)
    assert hashers.take(("u", 0), path, 5) is running  # the held one, at the offset it was put at
    assert hashers.take(("u", 0), path, 5).hexdigest() == sha(b"01234")  # taken once: now read again from the file
    hashers.put(("u", 0), 5, running)
    assert hashers.take(("u", 0), path, 7).hexdigest() == sha(b"0123456")  # another offset: rebuilt
    hashers.put(("u", 0), 5, running)
    hashers.put(("v", 0), 5, running)
    hashers.drop("u")
    assert hashers.take(("u", 0), path, 5) is not running
    assert hashers.take(("v", 0), path, 5) is running


# --- the ring of buffers

def test_the_ring_receives_straight_from_a_reader_at_an_odd_offset(tmp_path):
    """An upload resumed at an odd offset: the head up to the next aligned offset goes first, then
    the buffers fill in turn; the file and the running hash hold exactly the bytes, in order."""
    path = tmp_path / "f"
    head = os.urandom(4095 + 4096)
    path.write_bytes(head)
    rest = os.urandom(2 * BUFFER + 333)
    hasher = hashlib.sha256(head)
    sink = Appender(path, hasher, direct=True)
    try:
        body = io.BytesIO(rest)
        assert sink.receive(lambda view: body.readinto(view[:777_777]), len(rest)) == len(rest)  # short reads, too
    finally:
        sink.close()
    assert path.read_bytes() == head + rest
    assert hasher.hexdigest() == sha(head + rest)


# --- a chunk request's range, as the data endpoint reads it

@pytest.mark.parametrize(("target", "headers", "expected"), [
    ("/uploads/x/files/0?offset=0", {"Content-Length": "10"}, (0, 10)),
    ("/uploads/x/files/0?offset=4096&other=1", {"Content-Length": "0"}, (4096, 0)),
    ("/uploads/x/files/0", {"Content-Length": "10"}, (422, "offset")),
    ("/uploads/x/files/0?offset=-1", {"Content-Length": "10"}, (422, "offset")),
    ("/uploads/x/files/0?offset=1.5", {"Content-Length": "10"}, (422, "offset")),
    ("/uploads/x/files/0?offset=%C2%B2", {"Content-Length": "10"}, (422, "offset")),  # a digit, not ASCII
    ("/uploads/x/files/0?offset=0", {}, (411, "Content-Length")),
    ("/uploads/x/files/0?offset=0", {"Content-Length": "ten"}, (411, "Content-Length")),
    ("/uploads/x/files/0?offset=0", {"Content-Length": "10", "Transfer-Encoding": "chunked"}, (411, "Content-Length")),
])
def test_a_chunks_range(target, headers, expected):
    if isinstance(expected[1], int):
        assert chunk_range(target, headers) == expected
        return
    with pytest.raises(ApiError) as err:
        chunk_range(target, headers)
    assert (err.value.status, err.value.field) == expected
