"""Table tests of flightbase.archives: hostile names and archives, and good ones.

Each archive is built here in memory (tarfile, zipfile) from a small table of
members; every refusal must name the field and leave the destination empty.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import stat
import tarfile
import tracemalloc
import warnings
import zipfile
from pathlib import Path

import pytest

from flightbase.archives import (
    ExtractLimits,
    TarHeaderLimits,
    TarHeaderRefused,
    UnsafeInput,
    check_paths,
    extract,
    is_archive,
    open_tar,
    path_problem,
)

FIELD = "files[3]"
ROOMY = ExtractLimits(max_bytes=10_000_000, max_files=100, max_ratio=200)


# -- names --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "problem"), [
    ("data/train.csv", None),
    ("a b/ü.txt", None),
    ("..hidden", None),
    ("", "is empty"),
    ("../etc/passwd", "contains a '..' part"),
    ("a/../../b", "contains a '..' part"),
    ("a/./b", "contains a '.' part"),
    ("/etc/passwd", "is an absolute path (must be relative to the dataset)"),
    ("a\0b", "contains a NUL or control character"),
    ("a\nb", "contains a NUL or control character"),
    ("a\x1b[31mb", "contains a NUL or control character"),
    ("a\x7fb", "contains a NUL or control character"),
    ("a\\b", "contains a backslash (use '/' between folders)"),
    ("a//b", "contains an empty part ('//')"),
    ("a/", "ends with '/' (name a file, not a folder)"),
    ("x" * 256, "has a part longer than 255 bytes"),
    ("a/" * 2049 + "b", "is longer than 4096 bytes"),
])
def test_path_problem(path, problem):
    assert path_problem(path) == problem


@pytest.mark.parametrize(("paths", "field", "reason"), [
    (["a", "b/c"], None, None),
    (["a", "../b"], "files[1].path", "'../b' contains a '..' part"),
    (["a", "a"], "files[1].path", "'a' appears twice"),
    (["a", "a/b"], "files[1].path", "'a/b' needs 'a' to be a folder, but it is a file"),
    (["/abs"], "files[0].path", "'/abs' is an absolute path (must be relative to the dataset)"),
])
def test_check_paths(paths, field, reason):
    if field is None:
        check_paths(paths)
        return
    with pytest.raises(UnsafeInput) as err:
        check_paths(paths)
    assert (err.value.field, err.value.reason, err.value.status) == (field, reason, 422)


@pytest.mark.parametrize(("name", "expected"), [
    ("a.zip", True), ("a.TAR.GZ", True), ("a.tgz", True), ("a.tar", True), ("a.gz", False), ("a.txt", False),
])
def test_is_archive(name, expected):
    assert is_archive(name) is expected


# -- archive factories ------------------------------------------------------------------------------

def make_tar(members: list[tarfile.TarInfo | tuple[str, bytes]], mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode, format=tarfile.PAX_FORMAT) as tf:
        for m in members:
            if isinstance(m, tuple):
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tf.addfile(info, io.BytesIO(m[1]))
            else:
                tf.addfile(m)
    return buf.getvalue()


def tar_special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


def make_zip(members: list[tuple[str, bytes] | tuple[str, bytes, int]], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for m in members:
            info = zipfile.ZipInfo(m[0])
            info.compress_type = compression
            if len(m) == 3:
                info.external_attr = m[2] << 16
            with warnings.catch_warnings():  # "Duplicate name": wanted here
                warnings.simplefilter("ignore", UserWarning)
                zf.writestr(info, m[1])
    return buf.getvalue()


def tree(root: Path) -> dict[str, bytes | None]:
    """Every entry under root: files with their bytes, folders as None."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def refuse(tmp_path: Path, archive_name: str, data: bytes, limits: ExtractLimits = ROOMY) -> UnsafeInput:
    archive = tmp_path / archive_name
    archive.write_bytes(data)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeInput) as err:
        extract(archive, dest, limits, FIELD)
    assert err.value.field == FIELD
    assert list(dest.iterdir()) == []  # nothing left behind
    return err.value


# -- refused archives ---------------------------------------------------------------------------------

ZEROS = b"\0" * 5_000_000  # deflates about 1000 times

REFUSED = [
    # (id, archive name, bytes, limits, status, words in the reason)
    ("tar dotdot", "a.tar.gz", make_tar([("ok.txt", b"x"), ("../evil", b"x")]), ROOMY, 422, "'../evil' contains a '..' part"),
    ("tar nested dotdot", "a.tgz", make_tar([("a/../../evil", b"x")]), ROOMY, 422, "contains a '..' part"),
    ("tar absolute", "a.tar.gz", make_tar([("/etc/evil", b"x")]), ROOMY, 422, "is an absolute path"),
    ("tar control char", "a.tar.gz", make_tar([("a\nb.txt", b"x")]), ROOMY, 422, "NUL or control character"),
    ("tar escape char", "a.tar", make_tar([("a\x1b.txt", b"x")], mode="w"), ROOMY, 422, "NUL or control character"),
    ("tar symlink", "a.tar.gz", make_tar([tar_special("link", tarfile.SYMTYPE, "/etc/passwd")]), ROOMY, 422,
     "'link' is a link"),
    ("tar relative symlink", "a.tar.gz", make_tar([("f", b"x"), tar_special("link", tarfile.SYMTYPE, "f")]), ROOMY, 422,
     "is a link"),
    ("tar hard link", "a.tar.gz", make_tar([("f", b"x"), tar_special("hard", tarfile.LNKTYPE, "f")]), ROOMY, 422,
     "'hard' is a link"),
    ("tar char device", "a.tar.gz", make_tar([tar_special("null", tarfile.CHRTYPE)]), ROOMY, 422, "'null' is not a regular file"),
    ("tar block device", "a.tar.gz", make_tar([tar_special("sda", tarfile.BLKTYPE)]), ROOMY, 422, "not a regular file"),
    ("tar fifo", "a.tar.gz", make_tar([tar_special("pipe", tarfile.FIFOTYPE)]), ROOMY, 422, "not a regular file"),
    # a tar.gz has no per-member sizes to compare: the whole expansion is checked (archives under 1 MB count as 1 MB)
    ("tar bomb", "a.tar.gz", make_tar([("zeros", ZEROS)]), ExtractLimits(max_bytes=100_000_000, max_files=100, max_ratio=2),
     413, "more than 2 times its size"),
    ("tar too many files", "a.tar.gz", make_tar([(f"f{i}", b"x") for i in range(6)]),
     ExtractLimits(max_bytes=10_000, max_files=5, max_ratio=200), 413, "more than the limit of 5 entries"),
    ("tar too many bytes", "a.tar.gz", make_tar([("a", b"x" * 600), ("b", b"x" * 600)]),
     ExtractLimits(max_bytes=1000, max_files=10, max_ratio=200), 413, "more than 1000 bytes"),
    ("tar duplicate", "a.tar.gz", make_tar([("a", b"x"), ("a", b"y")]), ROOMY, 422, "'a' appears twice"),
    ("not a tar", "a.tar.gz", b"this is not an archive", ROOMY, 422, "not a readable archive"),
    ("zip dotdot", "a.zip", make_zip([("ok.txt", b"x"), ("../evil", b"x")]), ROOMY, 422, "'../evil' contains a '..' part"),
    ("zip absolute", "a.zip", make_zip([("/etc/evil", b"x")]), ROOMY, 422, "is an absolute path"),
    ("zip control char", "a.zip", make_zip([("a\rb.txt", b"x")]), ROOMY, 422, "NUL or control character"),
    ("zip backslash", "a.zip", make_zip([("a\\..\\b", b"x")]), ROOMY, 422, "contains a backslash"),
    ("zip symlink", "a.zip", make_zip([("link", b"/etc/passwd", stat.S_IFLNK | 0o777)]), ROOMY, 422,
     "'link' is a symbolic link"),
    ("zip device", "a.zip", make_zip([("null", b"", stat.S_IFCHR | 0o666)]), ROOMY, 422, "'null' is not a regular file"),
    ("zip fifo", "a.zip", make_zip([("pipe", b"", stat.S_IFIFO | 0o666)]), ROOMY, 422, "not a regular file"),
    ("zip bomb", "a.zip", make_zip([("zeros", ZEROS)]), ROOMY, 413, "compression ratio above 200"),
    # many members, each below the per-member threshold, that together expand far beyond the archive
    ("zip bomb of small members", "a.zip", make_zip([(f"z{i}", b"\0" * 1_000_000) for i in range(8)]),
     ExtractLimits(max_bytes=100_000_000, max_files=100, max_ratio=2), 413, "more than 2 times its size"),
    ("zip too many files", "a.zip", make_zip([(f"f{i}", b"x") for i in range(6)]),
     ExtractLimits(max_bytes=10_000, max_files=5, max_ratio=200), 413, "6 entries, more than the limit of 5"),
    ("zip too many bytes", "a.zip", make_zip([("a", b"x" * 600), ("b", b"x" * 600)], zipfile.ZIP_STORED),
     ExtractLimits(max_bytes=1000, max_files=10, max_ratio=200), 413, "more than 1000 bytes"),
    ("zip duplicate", "a.zip", make_zip([("a", b"x"), ("a", b"y")]), ROOMY, 422, "'a' appears twice"),
    ("not a zip", "a.zip", b"PK but not really", ROOMY, 422, "not a readable archive"),
]


@pytest.mark.parametrize(("name", "data", "limits", "status", "reason"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_refused_archives_name_the_field_and_leave_nothing(tmp_path, name, data, limits, status, reason):
    err = refuse(tmp_path, name, data, limits)
    assert err.status == status
    assert reason in err.reason, err.reason


def test_zip_that_lies_about_its_size_is_cut_at_the_budget(tmp_path):
    data = make_zip([("a", b"x" * 5000)], zipfile.ZIP_STORED)
    i = data.rindex(b"PK\x01\x02")  # central directory entry: uncompressed size at offset 24
    lying = data[:i + 24] + (100).to_bytes(4, "little") + data[i + 28:]
    err = refuse(tmp_path, "a.zip", lying)
    assert err.status == 422 and "not a readable archive" in err.reason


def test_a_new_destination_is_removed_on_refusal(tmp_path):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(make_tar([("good", b"x"), ("../evil", b"x")]))
    with pytest.raises(UnsafeInput):
        extract(archive, tmp_path / "new", ROOMY, FIELD)
    assert not (tmp_path / "new").exists() and not (tmp_path / "evil").exists()


# -- good archives ------------------------------------------------------------------------------------

GOOD = {"README.md": b"# data\n", "train/a.csv": b"x,y\n1,2\n" * 100, "train/deep/b.bin": bytes(range(256)) * 10}
EXPECTED_TREE = {"README.md": GOOD["README.md"], "train": None, "train/a.csv": GOOD["train/a.csv"],
                 "train/deep": None, "train/deep/b.bin": GOOD["train/deep/b.bin"]}


@pytest.mark.parametrize(("name", "data"), [
    ("good.zip", make_zip([("train/", b""), *GOOD.items()])),
    ("good.tar.gz", make_tar([tar_special("./", tarfile.DIRTYPE), tar_special("./train", tarfile.DIRTYPE),
                              *((f"./{k}", v) for k, v in GOOD.items()), tar_special("train/", tarfile.DIRTYPE)])),
    ("good.tar", make_tar(list(GOOD.items()), mode="w")),
])
def test_good_archives_extract_to_the_expected_tree(tmp_path, name, data):
    archive = tmp_path / name
    archive.write_bytes(data)
    dest = tmp_path / "dest"
    got = extract(archive, dest, ROOMY, FIELD)
    assert tree(dest) == EXPECTED_TREE
    assert sorted(got.files) == sorted((k, len(v), hashlib.sha256(v).hexdigest()) for k, v in GOOD.items())
    assert got.total == sum(len(v) for v in GOOD.values())


def test_destination_must_be_empty(tmp_path):
    archive = tmp_path / "good.zip"
    archive.write_bytes(make_zip(list(GOOD.items())))
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "mine").write_text("keep")
    with pytest.raises(ValueError, match="not empty"):
        extract(archive, tmp_path / "dest", ROOMY, FIELD)
    assert tree(tmp_path / "dest") == {"mine": b"keep"}


# -- finding 7: tar headers whose data tarfile would read whole into memory ------------------------------
# The archives are written here block by block: a 512-byte header may declare any size (4 GiB below)
# while only a few real bytes follow it, so nothing large is ever allocated unless the reader does it.

HUGE = 4 << 30
END = b"\0" * 1024  # two zero blocks end a tar


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 512)


def raw_header(name: str, kind: bytes, size: int) -> bytes:
    """One tar header block declaring ``size`` bytes of data (GNU base-256 numbers allow any size, negative too)."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    return info.tobuf(tarfile.GNU_FORMAT)


def raw_member(name: str, data: bytes, kind: bytes = tarfile.REGTYPE) -> bytes:
    return raw_header(name, kind, len(data)) + _pad(data)


def pax_record(key: str, value: str) -> bytes:
    """'<length> <key>=<value>\\n', the length counting itself."""
    body = f" {key}={value}\n".encode()
    length = len(body) + len(str(len(body)))
    if len(str(length)) + len(body) != length:
        length += 1
    return str(length).encode() + body


def pax(records: dict[str, str] | list[tuple[str, str]], kind: bytes = tarfile.XHDTYPE) -> bytes:
    items = records.items() if isinstance(records, dict) else records
    return raw_member("././@PaxHeader", b"".join(pax_record(k, v) for k, v in items), kind)


GOOD_MEMBER = raw_member("ok.txt", b"fine\n")


def refuse_in_little_memory(tmp_path: Path, name: str, data: bytes, limits: ExtractLimits = ROOMY) -> UnsafeInput:
    """``refuse``, and the reader never held more than 8 MiB (tracemalloc sees every Python allocation;
    ru_maxrss would not: a 4 GiB bytes object whose pages are never touched is not resident)."""
    tracemalloc.start()
    try:
        err = refuse(tmp_path, name, data, limits)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"reading the archive allocated {peak} bytes at its peak"
    return err


PAX_TOO_BIG = f"is a pax extended header of {HUGE} bytes, more than the limit of 1048576 bytes"
NAME_TOO_BIG = f"of {HUGE} bytes, more than the limit of 65536 bytes"
HUGE_HEADERS = [
    # (id, header type, header name, words in the reason)
    ("pax extended", tarfile.XHDTYPE, "././@PaxHeader", PAX_TOO_BIG),
    ("pax global", tarfile.XGLTYPE, "pax_global_header", PAX_TOO_BIG),
    ("GNU long name", tarfile.GNUTYPE_LONGNAME, "././@LongLink", "is a GNU long name " + NAME_TOO_BIG),
    ("GNU long link", tarfile.GNUTYPE_LONGLINK, "././@LongLink", "is a GNU long link " + NAME_TOO_BIG),
]


@pytest.mark.parametrize("compress", [False, True], ids=["tar", "tar.gz"])
@pytest.mark.parametrize("after_a_member", [False, True], ids=["first", "after a member"])
@pytest.mark.parametrize(("kind", "header_name", "reason"), [h[1:] for h in HUGE_HEADERS], ids=[h[0] for h in HUGE_HEADERS])
def test_finding7_huge_extended_header_is_refused_before_its_data_is_read(tmp_path, kind, header_name, reason,
                                                                          after_a_member, compress):
    offset = 1024 if after_a_member else 0
    few_bytes = _pad(b"30 path=only a few real bytes\n")
    data = (GOOD_MEMBER if after_a_member else b"") + raw_header(header_name, kind, HUGE) + few_bytes + END
    err = refuse_in_little_memory(tmp_path, "a.tar.gz" if compress else "a.tar", gzip.compress(data) if compress else data)
    assert err.status == 413
    assert err.reason == f"tar header {header_name!r} at byte {offset} {reason}"


EXTENDED_REFUSED = [
    # (id, archive, status, the reason)
    ("nine extended headers in a row", b"".join(pax({"comment": str(i)}) for i in range(9)) + GOOD_MEMBER + END, 413,
     "tar header '././@PaxHeader' at byte 8192 is one of more than 8 extended headers in a row"),
    ("headers in front of one member over 1 MiB together",
     pax({"comment": "a" * 700_000}) + pax({"comment": "b" * 700_000}) + GOOD_MEMBER + END, 413,
     "tar header '././@PaxHeader' at byte 700928: the extended headers in front of one member hold more than "
     "the limit of 1048576 bytes"),
    ("a pax header and a long name over 1 MiB together",
     pax({"comment": "a" * 1_000_000}) + raw_member("././@LongLink", b"n" * 60_000, tarfile.GNUTYPE_LONGNAME) + GOOD_MEMBER + END,
     413, "tar header '././@LongLink' at byte 1000960: the extended headers in front of one member hold more than "
          "the limit of 1048576 bytes"),
    ("a member with 1025 pax records", pax([(f"k{i}", "") for i in range(1025)]) + GOOD_MEMBER + END, 413,
     "tar member 'ok.txt' at byte 0 has 1025 pax records, more than the limit of 1024"),
    ("global headers with 129 records", pax({f"g{i}": "" for i in range(129)}, tarfile.XGLTYPE) + GOOD_MEMBER + END, 413,
     "tar member 'ok.txt' at byte 1536: the archive's global pax headers hold more than the limit of 128 records"),
    # tarfile would read everything after such a header, or step back and read the same member forever
    ("a negative size", GOOD_MEMBER + raw_header("loop", tarfile.REGTYPE, -512) + END, 422,
     "tar header 'loop' at byte 1024 declares a negative size"),
    ("a negative size in a pax record", pax({"size": "-512"}) + GOOD_MEMBER + END, 422,
     "tar member 'ok.txt' at byte 0 declares a negative size"),
    ("a negative pax header size", raw_header("././@PaxHeader", tarfile.XHDTYPE, -1024) + GOOD_MEMBER + END, 422,
     "tar header '././@PaxHeader' at byte 0 declares a negative size"),
    ("an old GNU sparse member", raw_header("holes", tarfile.GNUTYPE_SPARSE, 0) + END, 422,
     "tar member 'holes' at byte 0 is a sparse file, which is not accepted (create the archive without --sparse)"),
    ("a pax 1.0 sparse member",
     pax({"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "holes", "GNU.sparse.realsize": "9"})
     + raw_member("GNUSparseFile.0/holes", _pad(b"99999999\n") + b"x") + END, 422, "is a sparse file, which is not accepted"),
    # tarfile would fail on this with a ValueError, not a TarError
    ("a malformed sparse size", pax({"GNU.sparse.realsize": "many"}) + GOOD_MEMBER + END, 422,
     "tar member 'ok.txt' at byte 1024 is a sparse file, which is not accepted"),
]


@pytest.mark.parametrize(("data", "status", "reason"), [r[1:] for r in EXTENDED_REFUSED], ids=[r[0] for r in EXTENDED_REFUSED])
def test_finding7_extended_headers_are_bounded(tmp_path, data, status, reason):
    err = refuse_in_little_memory(tmp_path, "a.tar", data)
    assert err.status == status
    assert reason in err.reason, err.reason


@pytest.mark.parametrize(("limits", "reason"), [
    (TarHeaderLimits(max_total_header_bytes=2500), "tar header '././@PaxHeader' at byte 6144: the archive's extended "
                                                  "headers hold more than the limit of 2500 bytes"),
    (TarHeaderLimits(max_total_records=5), "tar member 'f2' at byte 6144: the archive's pax headers hold more than "
                                           "the limit of 5 records"),
])
def test_finding7_header_totals_over_the_whole_archive_are_bounded(limits, reason):
    members = b"".join(pax({"comment": "c" * 1000, "mtime": "1"}) + raw_member(f"f{i}", b"x") for i in range(4))
    with open_tar(fileobj=io.BytesIO(members + END)) as tf:
        assert [m.name for m in tf.getmembers()] == ["f0", "f1", "f2", "f3"]  # within the default limits
    with pytest.raises(TarHeaderRefused) as err, open_tar(fileobj=io.BytesIO(members + END), limits=limits) as tf:
        tf.getmembers()
    assert (err.value.reason, err.value.status) == (reason, 413)


def test_finding7_ordinary_long_names_and_global_headers_still_extract(tmp_path):
    long_path = "d" * 150 + "/" + "é" * 100 + ".txt"  # over ustar's 100 bytes: a pax path record, or a GNU long name
    content = {long_path: b"long\n", "plain.txt": b"plain\n"}
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        buf = io.BytesIO()
        # like `git archive`: a global header with the commit, then members with their own headers
        with tarfile.open(fileobj=buf, mode="w:gz", format=fmt, pax_headers={"comment": "4c2f" * 10}) as tf:
            for name, data in content.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
        archive = tmp_path / f"{fmt}.tar.gz"
        archive.write_bytes(buf.getvalue())
        got = extract(archive, tmp_path / f"dest{fmt}", ROOMY, FIELD)
        assert sorted(f[0] for f in got.files) == sorted(content)
        assert (tmp_path / f"dest{fmt}" / long_path).read_bytes() == b"long\n"
