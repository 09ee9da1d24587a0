"""Hostile input: uploaded file names, and archives to extract.

Shared by the services that accept uploads: the registry (dataset files and
archives, image archive member names) and the jobqueue (training code).

Pure checks (:func:`path_problem`, :func:`check_paths`, :func:`is_archive`)
plus one extraction function (:func:`extract`, with :class:`ExtractLimits`).
Every refusal is an :class:`UnsafeInput` naming the field and the reason;
callers turn it into a 4xx answer. :func:`extract` removes what it wrote
before it raises, and callers remove what they staged, so nothing is left
behind.

Rules for names (uploaded paths and archive members alike): relative POSIX
paths of non-empty parts, no ``.`` or ``..`` part, no leading ``/``, no
backslash, no NUL or other control character, at most 255 bytes a part and
4096 in all. Archives may hold only regular files and directories: symbolic
and hard links, devices and FIFOs are refused, because a link inside a
dataset could point a training at files outside it. Extraction counts the
bytes it actually writes (headers can lie) and stops at the limits; the
expansion ratio is checked per zip member and for the whole archive (many
small, highly compressed members are a zip bomb too).

Every tar that a person uploads is opened with :func:`open_tar`. Python's
``tarfile`` reads the data of a pax extended header (types ``x``, ``g``) or a
GNU long name or link (``L``, ``K``) whole into memory, and parses it, before
it returns the member that follows: a header that declares 4 GB is a 4 GB
allocation before any check of ours runs. :func:`open_tar` reads through a
guarded ``TarInfo`` that checks each header's declared size before its data is
read, and bounds what the headers of the whole archive may make it keep
(:class:`TarHeaderLimits`); a refusal is a :class:`TarHeaderRefused`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath

ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")
_COPY_CHUNK = 1 << 20


class UnsafeInput(ValueError):
    def __init__(self, field: str, reason: str, status: int = 422):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.status = status  # 413 for what is too big, 422 for what is malformed or unsafe


class TarHeaderRefused(tarfile.TarError):
    """A tar header refused before its data was read: too large, too many, or a kind not accepted.

    A ``TarError`` (callers that catch those keep working) but deliberately not a
    ``HeaderError``: tarfile turns a ``HeaderError`` raised while it reads the
    header after a pax or long-name one into a bare ``ReadError``, and takes an
    ``InvalidHeaderError`` past the first member for the end of the archive.
    """

    def __init__(self, reason: str, status: int = 413):
        super().__init__(reason)
        self.reason = reason
        self.status = status  # 413 for too much header data, 422 for a header that is malformed or not accepted


@dataclass(frozen=True)
class TarHeaderLimits:
    """How much header data a tar may make us read and keep before its members are seen.

    Legitimate archives stay far below these: a pax header holds a few records
    (a long path, times, extended attributes), a long name is at most PATH_MAX
    (4096 bytes), and ``git archive`` writes one global header.
    """

    max_pax_bytes: int = 1 << 20  # one pax header (x or g), and all extended headers in front of one member together
    max_long_name_bytes: int = 64 << 10  # one GNU long name or long link (L or K)
    max_chain: int = 8  # extended headers in front of one member (tarfile reads a chain recursively)
    max_member_records: int = 1024  # pax records that apply to one member, its own and the global ones
    max_global_records: int = 128  # global records (g) gathered over the archive; every member keeps a copy
    max_total_header_bytes: int = 64 << 20  # all extended headers of the archive together
    max_total_records: int = 1_000_000  # pax records kept over the whole archive (about 100 bytes of memory each)


TAR_HEADER_LIMITS = TarHeaderLimits()

_PAX_TYPES = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)
_LONG_NAME_TYPES = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)


@dataclass
class _HeaderBudget:
    """What the headers of one open archive have used so far (kept on its TarFile)."""

    chain: int = 0  # extended headers read in front of the member being read now
    chain_bytes: int = 0
    total_bytes: int = 0
    total_records: int = 0


class _GuardedTarInfo(tarfile.TarInfo):
    """A TarInfo that checks each header before tarfile reads its data (see :func:`open_tar`).

    ``_proc_member`` is tarfile's documented hook for subclasses: it is called
    for every header right after its 512 bytes are parsed, and reads the
    header's data only when it calls on. Sparse files are refused: GNU's sparse
    formats make tarfile read maps of any length from the archive and fail on
    bad ones with errors other than ``TarError``; no upload needs them.
    """

    limits: TarHeaderLimits = TAR_HEADER_LIMITS

    def _proc_member(self, tarfile_):
        budget = tarfile_.__dict__.setdefault("_flightbase_header_budget", _HeaderBudget())
        where = f"tar header {self.name!r} at byte {self.offset}"
        if self.size < 0:  # base-256 sizes can be negative: tarfile would read the whole rest, or loop back
            raise TarHeaderRefused(f"{where} declares a negative size", status=422)
        if self.type == tarfile.GNUTYPE_SPARSE:
            self._refuse_sparse()
        outermost = budget.chain == 0
        if self.type in _PAX_TYPES or self.type in _LONG_NAME_TYPES:
            self._charge(budget, where)
            budget.chain += 1
            try:
                member = self._read(tarfile_, where)
            finally:
                budget.chain -= 1
        else:
            member = self._read(tarfile_, where)
        if outermost:
            self._check_member(tarfile_, budget, member)
        return member

    def _charge(self, budget: _HeaderBudget, where: str) -> None:
        """Count an extended header's data against the limits, before it is read."""
        limits = self.limits
        if self.type in _PAX_TYPES:
            kind, limit = "a pax extended header", limits.max_pax_bytes
        else:
            kind, limit = "a GNU long name" if self.type == tarfile.GNUTYPE_LONGNAME else "a GNU long link", limits.max_long_name_bytes
        if self.size > limit:
            raise TarHeaderRefused(f"{where} is {kind} of {self.size} bytes, more than the limit of {limit} bytes")
        if budget.chain == 0:
            budget.chain_bytes = 0
        if budget.chain + 1 > limits.max_chain:
            raise TarHeaderRefused(f"{where} is one of more than {limits.max_chain} extended headers in a row")
        budget.chain_bytes += self.size
        if budget.chain_bytes > limits.max_pax_bytes:
            raise TarHeaderRefused(f"{where}: the extended headers in front of one member hold more than "
                                   f"the limit of {limits.max_pax_bytes} bytes")
        budget.total_bytes += self.size
        if budget.total_bytes > limits.max_total_header_bytes:
            raise TarHeaderRefused(f"{where}: the archive's extended headers hold more than "
                                   f"the limit of {limits.max_total_header_bytes} bytes")

    def _read(self, tarfile_, where: str):
        try:
            return super()._proc_member(tarfile_)
        except ValueError as exc:  # tarfile's parsers let some malformed numbers through as ValueError
            raise TarHeaderRefused(f"{where} is malformed ({exc})", status=422) from None

    def _check_member(self, tarfile_, budget: _HeaderBudget, member: tarfile.TarInfo) -> None:
        """Checks of what the headers in front of ``member`` left in memory, once they are parsed."""
        limits = self.limits
        name = f"tar member {member.name[:200]!r} at byte {member.offset}"
        if member.size < 0:  # a pax "size" record can be negative too
            raise TarHeaderRefused(f"{name} declares a negative size", status=422)
        if len(tarfile_.pax_headers) > limits.max_global_records:
            raise TarHeaderRefused(f"{name}: the archive's global pax headers hold more than "
                                   f"the limit of {limits.max_global_records} records")
        records = len(member.pax_headers)
        if records > limits.max_member_records:
            raise TarHeaderRefused(f"{name} has {records} pax records, more than the limit of {limits.max_member_records}")
        budget.total_records += records
        if budget.total_records > limits.max_total_records:
            raise TarHeaderRefused(f"{name}: the archive's pax headers hold more than "
                                   f"the limit of {limits.max_total_records} records")

    def _refuse_sparse(self, *_args) -> None:
        raise TarHeaderRefused(f"tar member {self.name[:200]!r} at byte {self.offset} is a sparse file, which is not "
                               "accepted (create the archive without --sparse)", status=422)

    # tarfile calls these on the pax header for a member stored sparse, after reading its next header
    _proc_gnusparse_00 = _proc_gnusparse_01 = _proc_gnusparse_10 = _refuse_sparse

    def _apply_pax_info(self, pax_headers, encoding, errors):
        if any(key.startswith("GNU.sparse.") for key in pax_headers):
            self._refuse_sparse()
        super()._apply_pax_info(pax_headers, encoding, errors)


@lru_cache(maxsize=None)
def _tarinfo_class(limits: TarHeaderLimits) -> type[_GuardedTarInfo]:
    if limits == TAR_HEADER_LIMITS:
        return _GuardedTarInfo
    return type("_GuardedTarInfo", (_GuardedTarInfo,), {"limits": limits})


def open_tar(path: str | os.PathLike | None = None, *, fileobj=None,
             limits: TarHeaderLimits = TAR_HEADER_LIMITS) -> tarfile.TarFile:
    """Open an uploaded tar (plain, gzip, bzip2 or xz) for reading, its headers guarded.

    Every reader of a tar that a person sent uses this rather than
    ``tarfile.open``. Reading a member (iterating, ``getmembers``, and already
    the opening, which reads the first) raises :class:`TarHeaderRefused` when a
    header goes past ``limits``, before the header's data is read.
    """
    return tarfile.open(name=path, fileobj=fileobj, mode="r:*", tarinfo=_tarinfo_class(limits))


def path_problem(path: str) -> str | None:
    """Why ``path`` may not name a file inside a dataset, or None."""
    if not isinstance(path, str) or path == "":
        return "is empty"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in path):
        return "contains a NUL or control character"
    if "\\" in path:
        return "contains a backslash (use '/' between folders)"
    if path.startswith("/"):
        return "is an absolute path (must be relative to the dataset)"
    if len(path.encode()) > 4096:
        return "is longer than 4096 bytes"
    parts = path.split("/")
    if parts and parts[-1] == "":
        return "ends with '/' (name a file, not a folder)"
    for part in parts:
        if part == "":
            return "contains an empty part ('//')"
        if part in (".", ".."):
            return f"contains a {part!r} part"
        if len(part.encode()) > 255:
            return "has a part longer than 255 bytes"
    return None


def check_paths(paths: list[str], field: str = "files") -> None:
    """Each path valid, no duplicates, and no file where another needs a folder."""
    seen: set[str] = set()
    for i, path in enumerate(paths):
        why = path_problem(path)
        if why:
            raise UnsafeInput(f"{field}[{i}].path", f"{path!r} {why}")
        if path in seen:
            raise UnsafeInput(f"{field}[{i}].path", f"{path!r} appears twice")
        seen.add(path)
    for i, path in enumerate(paths):
        for parent in PurePosixPath(path).parents:
            if str(parent) != "." and str(parent) in seen:
                raise UnsafeInput(f"{field}[{i}].path", f"{path!r} needs {str(parent)!r} to be a folder, but it is a file")


def is_archive(path: str) -> bool:
    return path.lower().endswith(ARCHIVE_SUFFIXES)


@dataclass
class ExtractLimits:
    max_bytes: int  # most bytes the archive may expand to (quota and size limit)
    max_files: int
    max_ratio: int  # most a compressed member may expand, uncompressed / compressed


@dataclass
class Extracted:
    files: list[tuple[str, int, str]]  # (path relative to dest, size, sha256)

    @property
    def total(self) -> int:
        return sum(f[1] for f in self.files)


def _copy_limited(src, dst_path: Path, budget: int, field: str, name: str) -> tuple[int, str]:
    written = 0
    digest = hashlib.sha256()
    with open(dst_path, "xb") as dst:
        while True:
            chunk = src.read(_COPY_CHUNK)
            if not chunk:
                break
            written += len(chunk)
            if written > budget:
                raise UnsafeInput(field, f"member {name!r} expands beyond the limit of the upload (zip bomb?)", status=413)
            dst.write(chunk)
            digest.update(chunk)
    return written, digest.hexdigest()


def _target(dest: Path, name: str, field: str) -> Path:
    why = path_problem(name)
    if why:
        shown = repr(name) if len(name) <= 200 else f"{name[:200]!r}... ({len(name)} characters)"
        raise UnsafeInput(field, f"archive member {shown} {why}")
    target = dest / name
    if target.exists() or target.is_symlink():
        raise UnsafeInput(field, f"archive member {name!r} appears twice")
    # belt and braces: the resolved target stays inside dest
    if not str(target.resolve()).startswith(str(dest.resolve()) + os.sep):
        raise UnsafeInput(field, f"archive member {name!r} points outside the dataset")
    return target


def extract(archive: Path, dest: Path, limits: ExtractLimits, field: str) -> Extracted:
    """Extract ``archive`` into ``dest`` (which must be empty or new), refusing anything unsafe.

    On refusal what was written is removed: ``dest`` itself if this call
    created it, else its contents, so the caller is left with nothing.
    """
    created = not dest.exists()
    if not created and any(dest.iterdir()):
        raise ValueError(f"{dest} is not empty")  # a caller's mistake, not the archive's
    dest.mkdir(parents=True, exist_ok=True)
    try:
        lower = archive.name.lower()
        if lower.endswith(".zip"):
            return _extract_zip(archive, dest, limits, field)
        return _extract_tar(archive, dest, limits, field)
    except UnsafeInput:
        _remove(dest, created)
        raise
    except TarHeaderRefused as exc:
        _remove(dest, created)
        raise UnsafeInput(field, exc.reason, status=exc.status) from None
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, NotImplementedError, RuntimeError) as exc:
        _remove(dest, created)
        raise UnsafeInput(field, f"not a readable archive ({exc.__class__.__name__}: {exc})") from None


def _remove(dest: Path, created: bool) -> None:
    if created:
        shutil.rmtree(dest, ignore_errors=True)
        return
    for child in dest.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _folder(dest: Path, name: str, field: str) -> None:
    """Create a folder member; listing a folder again (or after its files) is harmless."""
    target = dest / name
    if target.is_dir() and not target.is_symlink():
        return
    _target(dest, name, field).mkdir(parents=True, exist_ok=True)


def _extract_zip(archive: Path, dest: Path, limits: ExtractLimits, field: str) -> Extracted:
    out: list[tuple[str, int, str]] = []
    total = 0
    allowed = max(archive.stat().st_size, _COPY_CHUNK) * limits.max_ratio  # the whole archive's expansion
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        if len(infos) > limits.max_files:
            raise UnsafeInput(field, f"archive holds {len(infos)} entries, more than the limit of {limits.max_files}", status=413)
        for info in infos:
            name = info.filename
            mode = (info.external_attr >> 16) & 0xFFFF
            if info.is_dir():
                _folder(dest, name.rstrip("/"), field)
                continue
            if mode and not (stat.S_ISREG(mode) or mode & 0o170000 == 0):
                kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
                raise UnsafeInput(field, f"archive member {name!r} is {kind}; only files and folders are allowed")
            target = _target(dest, name, field)
            if info.file_size > limits.max_bytes - total:
                raise UnsafeInput(field, f"archive expands to more than {limits.max_bytes} bytes (limit or quota)", status=413)
            if info.compress_size and info.file_size / max(info.compress_size, 1) > limits.max_ratio and info.file_size > _COPY_CHUNK:
                raise UnsafeInput(field, f"member {name!r} has a compression ratio above {limits.max_ratio} (zip bomb?)", status=413)
            if total + info.file_size > allowed:
                raise UnsafeInput(field, f"archive expands more than {limits.max_ratio} times its size (zip bomb?)", status=413)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src:
                size, sha = _copy_limited(src, target, min(limits.max_bytes - total, info.file_size), field, name)
            total += size
            out.append((name, size, sha))
    return Extracted(out)


def _extract_tar(archive: Path, dest: Path, limits: ExtractLimits, field: str) -> Extracted:
    out: list[tuple[str, int, str]] = []
    total = 0
    compressed = archive.stat().st_size
    count = 0
    with open_tar(archive) as tf:
        for member in tf:  # streaming: never builds the whole member list first
            count += 1
            if count > limits.max_files:
                raise UnsafeInput(field, f"archive holds more than the limit of {limits.max_files} entries", status=413)
            name = member.name[2:] if member.name.startswith("./") else member.name
            if name in ("", "."):
                continue
            if member.isdir():
                _folder(dest, name.rstrip("/"), field)
                continue
            if member.issym() or member.islnk():
                raise UnsafeInput(field, f"archive member {name!r} is a link; only files and folders are allowed")
            if not member.isreg():
                raise UnsafeInput(field, f"archive member {name!r} is not a regular file; only files and folders are allowed")
            target = _target(dest, name, field)
            if member.size > limits.max_bytes - total:
                raise UnsafeInput(field, f"archive expands to more than {limits.max_bytes} bytes (limit or quota)", status=413)
            if total + member.size > max(compressed, _COPY_CHUNK) * limits.max_ratio:
                raise UnsafeInput(field, f"archive expands more than {limits.max_ratio} times its size (archive bomb?)", status=413)
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tf.extractfile(member)
            size, sha = _copy_limited(src, target, member.size, field, name)
            total += size
            out.append((name, size, sha))
    return Extracted(out)
