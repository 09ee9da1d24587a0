"""How the platform touches files on the host, where it runs as root.

People's code is hostile and runs on the same machine (as the person's own
account), so one rule governs every file operation of the embedded
deployment (``docs/security.md``):

    the platform never opens, chowns, unlinks, lists or walks, as root, a
    path that a person's account can write.

The functions here are the only ways the services make and read files in
places people can reach:

- :func:`ensure_dir` makes (or checks) one folder of the platform's own
  trees, given its owner, group and mode, and refuses when the folder above is
  not the platform's (a person could swap what lies below it);
- :func:`hand_over` gives a tree the platform has just made, in a folder
  nobody else can enter, to a person, bottom-up, before they can reach it;
- :func:`mount_source` checks a path before the container engine (root) mounts it;
- :func:`create_file` opens a new file in one of the platform's folders
  without following links; :func:`read_tail` and :func:`read_from` read a
  file that a person may write into (never a link, never a FIFO or device,
  never more than a limit); :func:`read_folder` reads the files of a folder a
  person may write into the same way, through the folder's descriptor;
- :func:`workspace_group` is the system group of a workspace: a workspace's
  data (dataset versions, checkpoints) is readable through that group, and a
  job or notebook runs with the group of its own workspace only.

What a person's files need done (their notebook folder, its dataset links) is
done by a process running as that person (:mod:`flightbase_server.as_user`), so a
link planted there leads nowhere the person could not already go.
"""

from __future__ import annotations

import errno
import grp
import hashlib
import os
import re
import stat
import subprocess
import threading
from pathlib import Path


class UnsafePath(RuntimeError):
    """A path the platform was about to use as root is not the platform's (a link, or in a folder people can write)."""


def running_as_root() -> bool:
    return os.geteuid() == 0


def _check_parent(path: Path) -> None:
    """As root, refuse when the folder holding ``path`` could be changed by anyone but root.

    Not running as root (a service in a Kubernetes pod, whose volumes are
    group-writable for ``fsGroup``), a link could lead nowhere this process
    may not go anyway, and the check is skipped.
    """
    if not running_as_root():
        return
    parent = os.path.dirname(os.path.abspath(path))
    st = os.lstat(parent)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise UnsafePath(f"{parent} is not a folder")
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise UnsafePath(f"{parent} may be changed by others (owner uid {st.st_uid}, mode {st.st_mode & 0o7777:o}); "
                         f"refusing to use {path}")


def ensure_dir(path: Path | str, mode: int, uid: int = -1, gid: int = -1) -> Path:
    """Make the folder ``path`` (or keep it), with exactly this owner, group and mode.

    ``uid``/``gid`` of -1 mean the platform's own. The folder above must be the
    platform's: otherwise :class:`UnsafePath`. An existing folder must not be a
    link and must belong to the platform or to ``uid``; its owner, group and
    mode are set through a descriptor, so nothing is followed. Without root,
    ownership is left as it is and only the mode is set.
    """
    path = Path(path)
    _check_parent(path)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if st.st_uid not in (os.geteuid(), uid):
            raise UnsafePath(f"{path} belongs to uid {st.st_uid}, not to the platform")
        if running_as_root() and (uid, gid) != (-1, -1):
            os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return path


def create_file(path: Path | str, mode: int = 0o600, *, truncate: bool = False, append: bool = False) -> int:
    """Open (creating if missing) a file in one of the platform's folders for writing; returns the descriptor.

    The folder must be the platform's (:func:`ensure_dir`); the file itself is
    never a link (``O_NOFOLLOW``) and must be a regular file.
    """
    _check_parent(Path(path))
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    flags |= os.O_TRUNC if truncate else 0
    flags |= os.O_APPEND if append else 0
    fd = os.open(path, flags, mode)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafePath(f"{path} is not a regular file")
    os.set_blocking(fd, True)
    return fd


def mount_source(path: Path | str) -> str:
    """``path`` as a bind-mount source for a container, once it is sure to lead where it says.

    The container engine resolves a mount source as root, following links: a
    source a person could swap for a link would mount any file of the machine
    into their container. So a source must not be a link, and the folder
    holding it must be root's (:func:`_check_parent`); what lies below the
    source is seen from inside the container, where links resolve in the
    container's own file system.
    """
    path = os.path.abspath(path)
    _check_parent(Path(path))
    if stat.S_ISLNK(os.lstat(path).st_mode):
        raise UnsafePath(f"{path} is a link; refusing to mount it")
    return path


def _open_regular(path: Path | str) -> int | None:
    """A read descriptor on ``path`` if it is a regular file (not a link, FIFO or device), else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR, errno.EACCES, errno.ENXIO):
            return None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def read_tail(path: Path | str, limit: int) -> bytes:
    """The last ``limit`` bytes of a regular file; b"" if it is missing, a link or not a regular file."""
    fd = _open_regular(path)
    if fd is None:
        return b""
    try:
        size = os.fstat(fd).st_size
        return os.pread(fd, limit, max(0, size - limit))
    finally:
        os.close(fd)


def read_from(path: Path | str, offset: int, limit: int) -> bytes:
    """At most ``limit`` bytes of a regular file from ``offset``; b"" if it is missing, a link or not a regular file."""
    fd = _open_regular(path)
    if fd is None:
        return b""
    try:
        return os.pread(fd, limit, offset)
    finally:
        os.close(fd)


def read_folder(folder: Path | str, name_pattern: "re.Pattern[str]", *, max_files: int, max_bytes: int,
                max_entries: int = 1024) -> dict[str, bytes]:
    """The first ``max_bytes`` of each regular file of ``folder`` whose name matches, for a folder a
    person may write into (a job's NCCL logs, ``jobs/<id>/nccl/<run>/``).

    The folder itself must be an entry of one of the platform's folders and is opened without
    following a link; its entries are read through that descriptor (``openat``, never a link,
    never a FIFO or device), at most ``max_entries`` of them looked at and ``max_files`` read:
    a person can fill the folder, not make the platform walk or follow anything."""
    try:
        dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR, errno.EACCES):
            return {}
        raise
    found: dict[str, bytes] = {}
    try:
        names = []
        with os.scandir(dfd) as it:
            for n, entry in enumerate(it):
                if n >= max_entries:
                    break
                if name_pattern.fullmatch(entry.name):
                    names.append(entry.name)
        for name in sorted(names)[:max_files]:
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY, dir_fd=dfd)
            except OSError:
                continue
            try:
                if stat.S_ISREG(os.fstat(fd).st_mode):
                    found[name] = os.pread(fd, max_bytes, 0)
            finally:
                os.close(fd)
    finally:
        os.close(dfd)
    return found


def hand_over(root: Path | str, uid: int, gid: int) -> None:
    """Give a tree the platform has just made to ``uid``:``gid``, deepest entries first.

    Only for a tree nobody else can reach yet: ``root`` is the platform's
    (mode 0700) until it is handed over itself, last, so no one can swap an
    entry below it while this runs. Links are changed themselves
    (``lchown``), never followed.
    """
    if not running_as_root():
        return
    root = str(root)
    st = os.lstat(root)
    if stat.S_ISLNK(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise UnsafePath(f"{root} is not a private folder of the platform; refusing to hand it over")
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames + dirnames:
            os.lchown(os.path.join(dirpath, name), uid, gid)
    os.lchown(root, uid, gid)


# -- workspace groups -------------------------------------------------------------------------

GROUP_PREFIX = "fbws-"
_SIMPLE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,26}$")
_group_lock = threading.Lock()


def workspace_group_name(workspace: str) -> str:
    """The system group of a workspace: ``fbws-<name>`` when the name suits a group, else a digest of it.

    Workspace names may hold capitals and dots and be 128 characters long;
    group names may not (``useradd``'s NAME_REGEX, 32 characters).
    """
    if _SIMPLE.match(workspace):
        return GROUP_PREFIX + workspace
    return "fbwsh-" + hashlib.sha256(workspace.encode()).hexdigest()[:24]


def workspace_group(workspace: str) -> int | None:
    """The gid of the workspace's system group, created on first use; None without root."""
    if not running_as_root():
        return None
    name = workspace_group_name(workspace)
    with _group_lock:
        try:
            return grp.getgrnam(name).gr_gid
        except KeyError:
            pass
        proc = subprocess.run(["groupadd", name], capture_output=True, text=True)
        # 9: the group exists (the other service made it a moment ago)
        if proc.returncode not in (0, 9):
            raise RuntimeError(f"cannot create the system group {name!r} of workspace {workspace!r}: "
                               f"{proc.stderr.strip()}")
        return grp.getgrnam(name).gr_gid


def workspace_dir(parent: Path | str, workspace: str) -> Path:
    """``parent/<workspace>``: root's, readable through the workspace's group only (0750)."""
    gid = workspace_group(workspace)
    return ensure_dir(Path(parent) / workspace, 0o750, 0, gid if gid is not None else -1)
