"""Upload an image archive (``docker save`` or an OCI image layout, as a tar).

The archive is streamed to the staging area, read, and pushed to the
platform's OCI registry under ``<workspace>/<name>:<tag>``, so that only that
workspace's notebooks and trainings are offered it. Without a configured
registry (``FLIGHTBASE_OCI_REGISTRY_URL``) the route answers 503; registering
an image by reference works either way.
"""

from __future__ import annotations

import tarfile
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from flightbase.archives import TarHeaderRefused, open_tar
from flightbase_server.service.access import InWorkspace, Level, workspace as in_workspace
from flightbase_server.service.deps import in_session
from flightbase_server.service.errors import ApiError
from flightbase_registry import storage
from flightbase_registry.api.catalog import image_out
from flightbase_registry.api.common import refuse_over_quota, usage
from flightbase_registry.builtin import BUILTIN_IMAGES
from flightbase_registry.models import Image
from flightbase_registry.oci import ArchiveError, OciRegistry, PushError, read_archive
from flightbase_registry.schemas import ImageOut, ImageUpload

router = APIRouter(tags=["images"])


@router.post("/workspaces/{workspace}/images/upload", response_model=ImageOut, status_code=201,
             openapi_extra={"requestBody": {"required": True, "content": {"application/x-tar": {"schema": {"type": "string", "format": "binary"}}}}})
async def upload_image(request: Request, w: Annotated[InWorkspace, in_workspace(Level.MEMBER, "images:write")],
                       params: Annotated[ImageUpload, Query()]):
    """Push an uploaded image archive (the request body) to the platform's OCI registry."""
    identity, ws, workspace = w.identity, w.ws, w.ws.name
    oci: OciRegistry | None = request.app.state.oci
    if oci is None:
        raise ApiError(503, "image uploads are unavailable: this platform has no OCI registry configured "
                       "(set FLIGHTBASE_OCI_REGISTRY_URL); register an image by reference instead", field="body")
    if any(b.name == params.name for b in BUILTIN_IMAGES):
        raise ApiError(409, f"name: {params.name!r} is a built-in image", field="name")
    exists = await in_session(request, lambda s: s.scalars(select(Image.id).where(Image.workspace == workspace, Image.name == params.name)).first())
    if exists:
        raise ApiError(409, f"name: image {params.name!r} already exists in {workspace!r}", field="name")
    limit = request.app.state.registry_settings.max_file_bytes
    length = request.headers.get("content-length")
    if length and length.isdigit():
        if int(length) > limit:
            raise ApiError(413, f"the archive is {length} bytes, more than the limit of {limit}", field="body")
        await in_session(request, lambda s: refuse_over_quota(usage(s, ws), int(length), "body", "this image"))

    staging = storage.image_staging(request.app.state.settings.data_dir)
    staging.mkdir(parents=True, exist_ok=True)
    path = staging / f"{uuid.uuid4().hex}.tar"
    try:
        received = await _receive(request, path, limit)
        if received == 0:
            raise ApiError(422, "the request body is empty; send the image archive (a tar) as the body", field="body")
        async with request.app.state.quota_lock:
            await in_session(request, lambda s: refuse_over_quota(usage(s, ws), received, "body", "this image"))
            repository = f"{workspace}/{params.name}"
            try:
                archive, digest = await run_in_threadpool(_push, oci, path, repository, params.tag)
            except ArchiveError as exc:
                raise ApiError(422, f"not an image archive: {exc}", field="body") from None
            except PushError as exc:
                raise ApiError(502, str(exc), field="body") from None
            frameworks = params.frameworks or archive.frameworks()
            row = Image(id=uuid.uuid4().hex[:12], workspace=workspace, name=params.name,
                        reference=f"{oci.reference(repository, params.tag)}@{digest}",
                        description=params.description or archive.description(), frameworks=frameworks,
                        created_by=identity.name, tag=params.tag, digest=digest, size_bytes=archive.size)

            def add(session):
                session.add(row)
                session.flush()
                return row

            row = await in_session(request, add)
    finally:
        path.unlink(missing_ok=True)
    return image_out(row, request.app.state.deployment)


async def _receive(request: Request, path, limit: int) -> int:
    received = 0
    fh = await run_in_threadpool(open, path, "wb")
    try:
        parts, gathered = [], 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise ApiError(413, f"the archive is more than the limit of {limit} bytes", field="body")
            parts.append(chunk)
            gathered += len(chunk)
            if gathered >= 8 << 20:
                await run_in_threadpool(fh.write, b"".join(parts))
                parts, gathered = [], 0
        if parts:
            await run_in_threadpool(fh.write, b"".join(parts))
    except ClientDisconnect:
        raise ApiError(400, "the upload was interrupted; send the archive again", field="body") from None
    finally:
        await run_in_threadpool(fh.close)
    return received


def _push(oci: OciRegistry, path, repository: str, tag: str):
    try:
        tf = open_tar(path)  # headers guarded: tarfile would read a huge pax or long-name header whole
    except TarHeaderRefused as exc:
        raise ArchiveError(exc.reason) from None
    except (tarfile.TarError, OSError) as exc:
        raise ArchiveError(f"not a tar archive ({exc})") from None
    with tf:
        archive = read_archive(tf)
        return archive, oci.push(tf, archive, repository, tag)
