"""How the registry writes received chunks to its staging files (``flightbase_registry.writer.Appender``).

These run the real writer on the real file system of the test's temporary
folder, without a platform: a chunk arrives as a list of body pieces of any
size, and each request opens its own writer at the file's current size.
Where that file system takes ``O_DIRECT`` (ext4, xfs) the aligned middle of
each chunk goes around the page cache and the head and tail through it; where
it does not, everything goes through the page cache. Either way the file must
hold exactly the bytes received, and the running SHA-256 must be theirs.
"""

from __future__ import annotations

import hashlib
import os
import random

import pytest

from flightbase_registry import writer


def pieces(data: bytes, rng: random.Random, largest: int) -> list[bytes]:
    out, at = [], 0
    while at < len(data):
        n = rng.randint(1, largest)
        out.append(data[at:at + n])
        at += n
    return out


@pytest.mark.parametrize("direct", [True, False], ids=["direct-where-possible", "page-cache"])
def test_chunks_at_odd_offsets_make_exactly_the_file(tmp_path, direct):
    rng = random.Random(5)
    data = os.urandom(3 * writer.BUFFER + 12_345)
    # chunk boundaries that are aligned, unaligned, inside and across the writer's buffers
    cuts = [0, 1, 4095, 4096, 700_001, writer.BUFFER, writer.BUFFER + 3, 2 * writer.BUFFER + 4097, len(data)]
    path = tmp_path / "f.bin"
    hasher = hashlib.sha256()
    used_direct = False
    for start, end in zip(cuts, cuts[1:]):
        assert (os.path.getsize(path) if path.exists() else 0) == start
        sink = writer.Appender(path, hasher, direct)
        used_direct |= sink.direct is not None
        try:
            batch = pieces(data[start:end], rng, 300_000)
            for i in range(0, len(batch), 5):  # batches of a few pieces, as the event loop hands them over
                sink.write(batch[i:i + 5])
        finally:
            sink.close()
    assert path.read_bytes() == data
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()
    if not direct:
        assert not used_direct



def test_after_a_failed_write_nothing_is_written_past_it(tmp_path):
    """The buffers queued behind a failed disk write are not written: the file keeps only the
    contiguous bytes before the failure, never a hole a resumed upload would take for data.
    The failure is injected (one ``_write_at`` call raises EIO, as a failing disk would): a
    real transient I/O error cannot be produced on demand here."""
    import errno as errnos

    data = os.urandom(writer.RING * writer.BUFFER * 2)
    path = tmp_path / "f.bin"

    class FailingOnce(writer.Appender):
        calls = 0

        def _write_at(self, view, offset):
            FailingOnce.calls += 1
            if FailingOnce.calls == 2:
                raise OSError(errnos.EIO, "injected I/O error")
            super()._write_at(view, offset)

    sink = FailingOnce(path, hashlib.sha256(), True)
    with pytest.raises(OSError, match="injected"):
        try:
            sink.write([data])
        finally:
            sink.close()
    assert os.path.getsize(path) == writer.BUFFER  # the first buffer only; nothing after the failed second
    assert path.read_bytes() == data[:writer.BUFFER]
