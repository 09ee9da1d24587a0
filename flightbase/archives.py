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
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")
_COPY_CHUNK = 1 << 20


class UnsafeInput(ValueError):
    def __init__(self, field: str, reason: str, status: int = 422):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.status = status  # 413 for what is too big, 422 for what is malformed or unsafe


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
        raise UnsafeInput(field, f"archive member {name!r} {why}")
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
    with tarfile.open(archive, mode="r:*") as tf:
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
