"""Table tests of flightbase.archives: hostile names and archives, and good ones.

Each archive is built here in memory (tarfile, zipfile) from a small table of
members; every refusal must name the field and leave the destination empty.
"""

from __future__ import annotations

import hashlib
import io
import stat
import tarfile
import warnings
import zipfile
from pathlib import Path

import pytest

from flightbase.archives import ExtractLimits, UnsafeInput, check_paths, extract, is_archive, path_problem

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
