"""Upload training code: one file, or a .zip / .tar.gz archive extracted safely.

The body is streamed to disk (never held in memory), limited in size, and an
archive is checked entry by entry (no absolute paths, no '..', no links, no
bombs) before anything is kept. The upload is then named by a training's
``code_id``.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request

from flightbase_server.service.access import InWorkspace, Level, workspace as in_workspace
from flightbase_server.service.deps import in_session
from flightbase_server.service.errors import ApiError
from flightbase_jobqueue import models
from flightbase_jobqueue.schemas import CodeOut
from flightbase.archives import ExtractLimits, UnsafeInput, extract, is_archive, path_problem

router = APIRouter(tags=["code"])

MAX_CODE_BYTES = 200 * 1024 * 1024


def code_root(request: Request) -> Path:
    return request.app.state.settings.data_dir / "code"


@router.post("/code", response_model=CodeOut, status_code=201, summary="Upload training code (raw body)")
async def upload_code(
    request: Request,
    w: Annotated[InWorkspace, in_workspace(Level.MEMBER, "trainings:write", source="query",
                                           description="Workspace the code belongs to")],
    filename: str = Query(description="The file's name, e.g. train.py or code.tar.gz"),
):
    identity, workspace = w.identity, w.ws.name
    why = path_problem(filename)
    if why or "/" in filename:
        raise ApiError(422, f"filename: {why or 'must be a plain file name'}", field="filename")
    declared = int(request.headers.get("content-length") or 0)
    if declared > MAX_CODE_BYTES:
        raise ApiError(413, f"body: {declared} bytes is more than the {MAX_CODE_BYTES} allowed for code", field="body")
    root = code_root(request)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)  # read by the service only; jobs get a copy
    code_id = uuid.uuid4().hex[:16]
    staging = Path(tempfile.mkdtemp(prefix=f".{code_id}-", dir=root))
    try:
        raw = staging / "upload"
        digest, size = hashlib.sha256(), 0
        with open(raw, "wb") as f:
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_CODE_BYTES:
                    raise ApiError(413, f"body: more than the {MAX_CODE_BYTES} bytes allowed for code", field="body")
                digest.update(chunk)
                f.write(chunk)
        if size == 0:
            raise ApiError(422, "body: the upload is empty", field="body")
        tree = staging / "tree"
        tree.mkdir()
        if is_archive(filename):
            try:
                extract(raw, tree, ExtractLimits(max_bytes=4 * MAX_CODE_BYTES, max_files=20000, max_ratio=200), "body")
            except UnsafeInput as exc:
                raise ApiError(exc.status, str(exc), field=exc.field) from None
        else:
            raw.rename(tree / filename)
        files = sorted(str(p.relative_to(tree)) for p in tree.rglob("*") if p.is_file())
        for path in [tree, *tree.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        tree.rename(root / code_id)  # published whole, or not at all
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    row = models.CodeUpload(id=code_id, workspace=workspace, filename=filename, size=size,
                            sha256=digest.hexdigest(), created_by=identity.name)

    def save(session):
        session.add(row)

    await in_session(request, save)
    return CodeOut(id=code_id, workspace=workspace, filename=filename, size=size, sha256=row.sha256, files=files[:1000])
