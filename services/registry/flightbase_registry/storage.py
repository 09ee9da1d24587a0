"""Where datasets live on disk, and the moves that make a version visible.

Layout under the platform's data directory::

    datasets/<workspace>/<dataset>/<number>/...   immutable versions (read-only files)
    uploads/<upload id>/files/<path>              uploads in progress (staging)
    uploads/<upload id>/version/                  a version being assembled at commit
    uploads/images/<id>.tar                       image archives being received

A version becomes visible in one ``rename`` of its assembled folder, so a
reader sees all of it or nothing; uploads and versions sit on the same file
system, which makes that rename atomic. :func:`version_dir` is what the
jobqueue and the spawner mount at ``/datasets/<name>``.

Who may read what (``docs/security.md``): ``uploads/`` is the registry's alone
(0700); ``datasets/<workspace>/`` belongs to root and the workspace's system
group (0750, :func:`flightbase_server.hostfs.workspace_dir`), so only jobs and
notebooks of that workspace reach its versions; below it, versions are
read-only to whoever reaches them (folders 0555, files 0444).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path

from flightbase_server import hostfs
from flightbase_server.workspaces import WORKSPACE_NAME_RE

READ_ONLY_FILE = 0o444
READ_ONLY_DIR = 0o555


def datasets_root(data_dir: Path) -> Path:
    return Path(data_dir) / "datasets"


def dataset_dir(data_dir: Path, workspace: str, dataset: str) -> Path:
    return datasets_root(data_dir) / workspace / dataset


def version_dir(data_dir: Path, workspace: str, dataset: str, number: int) -> Path:
    """The folder holding version ``number`` of a dataset (names are validated by the API)."""
    return dataset_dir(data_dir, workspace, dataset) / str(int(number))


def secure_datasets(data_dir: Path) -> None:
    """Make ``datasets/`` and give each workspace's folder in it its group and mode (also those an
    earlier version left readable to all). Only the registry writes in ``datasets/``.
    Folders that are no workspace's name are left alone: in a cluster ``datasets/`` is the
    datasets claim, whose ``.flightbase/`` holds the uploads in progress (the chart's
    registry Deployment)."""
    root = hostfs.ensure_dir(datasets_root(data_dir), 0o711)
    for entry in os.scandir(root):
        if entry.is_dir(follow_symlinks=False) and WORKSPACE_NAME_RE.match(entry.name):
            hostfs.workspace_dir(root, entry.name)


def uploads_root(data_dir: Path) -> Path:
    """Where uploads are staged: ``<data_dir>/uploads``, or, when ``datasets/`` is a mount of its
    own (the datasets claim in a cluster), ``datasets/.flightbase/uploads``: a commit renames the
    staged files into ``datasets/``, and a rename does not cross mounts (EXDEV)."""
    datasets = datasets_root(data_dir)
    if os.path.ismount(datasets):
        return datasets / ".flightbase" / "uploads"
    return Path(data_dir) / "uploads"


def upload_dir(data_dir: Path, upload_id: str) -> Path:
    return uploads_root(data_dir) / upload_id


def staged_file(data_dir: Path, upload_id: str, path: str) -> Path:
    return upload_dir(data_dir, upload_id) / "files" / path


def image_staging(data_dir: Path) -> Path:
    return uploads_root(data_dir) / "images"


def make_read_only(root: Path) -> None:
    """Files 0444 and folders 0555, so a mounted version cannot be changed by the job that reads it."""
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), READ_ONLY_FILE)
        os.chmod(dirpath, READ_ONLY_DIR)


def fsync_tree(root: Path) -> None:
    """Flush every file of a version before it is published (a crash never publishes half a file)."""
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def publish(assembled: Path, target: Path) -> None:
    """Move an assembled version into place in one rename; fails if the target exists.

    ``target`` is ``datasets/<workspace>/<dataset>/<number>``: the folders above
    it are made with their modes (the workspace's group, see the module's docstring).
    """
    dataset = target.parent
    workspaces = hostfs.ensure_dir(dataset.parent.parent, 0o711)
    hostfs.ensure_dir(hostfs.workspace_dir(workspaces, dataset.parent.name) / dataset.name, 0o755)
    if target.exists():
        raise FileExistsError(str(target))
    move_dir(assembled, target)
    _fsync_dir(target.parent)


def move_dir(source: Path, target: Path) -> None:
    """``os.rename`` of a folder that may be read-only (a version's, 0555).

    A folder that moves to another parent must be writable by whoever moves it (its ``..``
    changes): root may anyway, the registry running as an account (a cluster's pod) may not.
    The folder is made writable by its owner for the rename and gets its mode back after."""
    mode = stat.S_IMODE(os.lstat(source).st_mode)
    if mode & stat.S_IWUSR:
        os.rename(source, target)
        return
    os.chmod(source, mode | stat.S_IWUSR)
    try:
        os.rename(source, target)
    except BaseException:
        os.chmod(source, mode)
        raise
    os.chmod(target, mode)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_tree(path: Path) -> None:
    """Remove a version or staging folder, read-only modes included."""
    if not path.exists():
        return

    def _writable(func, p, _exc):
        parent = os.path.dirname(p)
        os.chmod(parent, stat.S_IRWXU)
        if os.path.isdir(p) and not os.path.islink(p):
            os.chmod(p, stat.S_IRWXU)
        func(p)

    for attempt in range(3):
        for dirpath, _dirnames, _filenames in os.walk(path):
            os.chmod(dirpath, stat.S_IRWXU)
        try:
            shutil.rmtree(path, onerror=_writable)
            return
        except OSError as exc:  # an entry made while it was being removed: once more
            if exc.errno != errno.ENOTEMPTY or attempt == 2:
                raise


def staged_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
