"""Dataset uploads through the registry's API, as the tests drive them: declare the files, send
them in chunks, commit a version (tests/registry/test_datasets.py, test_browser_page.py)."""

from __future__ import annotations

import hashlib
import sqlite3
from contextlib import closing
from pathlib import Path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def reg(platform, method, path, token, **kw):
    return platform.api("registry", method, path, token, **kw)


def start_upload(platform, token, ws, dataset, files: dict[str, bytes], extract=(), message=""):
    decl = [{"path": p, "size": len(d), "sha256": sha(d), "extract": p in extract} for p, d in files.items()]
    return reg(platform, "POST", f"workspaces/{ws}/datasets/{dataset}/uploads", token,
               json={"files": decl, "message": message})


def send(platform, token, ws, dataset, upload_id, index, data: bytes, offset: int = 0):
    return reg(platform, "PATCH", f"workspaces/{ws}/datasets/{dataset}/uploads/{upload_id}/files/{index}", token,
               params={"offset": offset}, content=data)


def upload_version(platform, token, ws, dataset, files: dict[str, bytes], extract=(), chunk=1 << 20):
    """Upload ``files`` in chunks of ``chunk`` bytes and commit them: the commit's response."""
    up = start_upload(platform, token, ws, dataset, files, extract)
    assert up.status_code == 201, up.text
    up = up.json()
    for i, data in enumerate(files.values()):
        for offset in range(0, len(data), chunk):
            r = send(platform, token, ws, dataset, up["id"], i, data[offset:offset + chunk], offset)
            assert r.status_code == 200, r.text
    return reg(platform, "POST", f"workspaces/{ws}/datasets/{dataset}/uploads/{up['id']}/commit", token)


def staged_uploads(data_dir: Path) -> set[str]:
    """The dataset uploads' folders in the registry's staging area (image pushes stage under ``images/``)."""
    root = data_dir / "uploads"
    return {p.name for p in root.iterdir() if p.name != "images"} if root.exists() else set()


def open_uploads(data_dir: Path) -> set[str]:
    """The uploads in progress: the rows of the registry's ``uploads`` table."""
    with closing(sqlite3.connect(f"file:{data_dir / 'registry.sqlite'}?mode=ro", uri=True, timeout=10)) as db:
        return {row[0] for row in db.execute("SELECT id FROM uploads")}

