"""``flightbase datasets ...`` and ``flightbase images ...``: the registry from the command line.

``client/flightbase/cli.py`` wires these in with ``cli_datasets.add_parsers(sub)``.
Uploads use the registry's chunked protocol, whose client side is
:mod:`flightbase.uploads`: run the same ``upload`` again after an interruption
and it resumes the matching upload in progress where it stopped. Errors raise ``ValueError``
or :class:`flightbase.client.ApiError`; ``cli.main`` prints them on one line
and exits with code 2.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import quote

from flightbase.cli_common import table, workspace_arg
from flightbase.uploads import READ, Counting, Progress, chunks, human, upload


def add_parsers(subparsers) -> None:
    ds = subparsers.add_parser("datasets", help="list (with no action), create, upload, download and delete datasets and versions")
    ds_sub = ds.add_subparsers(dest="action", required=True, parser_class=type(ds))

    p = ds_sub.add_parser("list", help="datasets of a workspace, with storage used")
    workspace_arg(p)
    p.add_argument("--json", action="store_true")
    p = ds_sub.add_parser("create", help="create an empty dataset")
    workspace_arg(p)
    p.add_argument("name")
    p.add_argument("--description", default="")
    p = ds_sub.add_parser("upload", help="upload files or a folder as the dataset's next version (resumable)")
    workspace_arg(p)
    p.add_argument("path", nargs="+", help="files or folders; a folder's files keep their paths below it")
    p.add_argument("-d", "--dataset", help="dataset name (default: the name of the first PATH); created if missing")
    p.add_argument("-m", "--message", default="", help="what changed in this version")
    p.add_argument("--extract", action="store_true", help="extract .zip / .tar.gz / .tgz / .tar archives on the server")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p = ds_sub.add_parser("versions", help="versions of a dataset")
    workspace_arg(p)
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p = ds_sub.add_parser("download", help="download a version (a tar of it, or one file)")
    workspace_arg(p)
    p.add_argument("name")
    p.add_argument("--version", default="latest", help="number or 'latest' (default)")
    p.add_argument("--file", help="download only this file of the version")
    p.add_argument("-o", "--output", help="where to write (default: <name>-v<N>.tar or the file's name)")
    p = ds_sub.add_parser("delete", help="delete a dataset, or one version with --version (workspace managers)")
    workspace_arg(p)
    p.add_argument("name")
    p.add_argument("--version", help="delete only this version")
    ds.set_defaults(func=cmd_datasets)

    im = subparsers.add_parser("images", help="list (with no action), register and upload images")
    im_sub = im.add_subparsers(dest="action", required=True, parser_class=type(im))
    p = im_sub.add_parser("list", help="built-in and workspace images")
    workspace_arg(p)
    p.add_argument("--json", action="store_true")
    p = im_sub.add_parser("register", help="register an image by reference (registry/name:tag)")
    workspace_arg(p)
    p.add_argument("name")
    p.add_argument("reference")
    p.add_argument("--description", default="")
    p.add_argument("--framework", action="append", default=[], dest="frameworks")
    p = im_sub.add_parser("upload", help="upload a `docker save` or OCI layout tar; pushed to the platform's registry")
    workspace_arg(p)
    p.add_argument("archive")
    p.add_argument("name")
    p.add_argument("--tag", default="latest")
    p.add_argument("--description", default="")
    p.add_argument("--framework", action="append", default=[], dest="frameworks")
    p.add_argument("--quiet", action="store_true")
    im.set_defaults(func=cmd_images)


# --- commands

def _client():
    from flightbase.client import Client

    return Client(timeout=600.0)


def _ws(args) -> str:
    if not args.workspace:
        raise ValueError("workspace: name one with --workspace (or set FLIGHTBASE_WORKSPACE)")
    return args.workspace


def _print_listing(rows: list[dict], as_json: bool, columns: list[str], **derived) -> bool:
    """Print a registry listing: the rows as they came with --json, else a table of ``columns``.

    ``derived`` names the display-only columns and how each is computed from a row (in order,
    so one may replace a field with its printable form). Returns False for --json so that the
    caller adds no human-readable footer to output that scripts parse.
    """
    if as_json:
        print(json.dumps(rows, indent=1))
        return False
    for r in rows:
        for column, compute in derived.items():
            r[column] = compute(r)
    table(rows, columns)
    return True


def cmd_datasets(args) -> int:
    with _client() as c:
        ws = _ws(args)
        base = f"workspaces/{quote(ws)}/datasets"
        if args.action == "list":
            rows = c.request("registry", "GET", base)
            if _print_listing(rows, args.json, ["name", "latest_version", "versions", "size", "description"],
                              size=lambda r: human(r.get("size_bytes"))):
                st = c.request("registry", "GET", f"workspaces/{quote(ws)}/storage")
                quota = human(st["quota_bytes"]) if st["quota_bytes"] is not None else "no quota"
                print(f"\nstorage: {human(st['used_bytes'])} used of {quota}")
        elif args.action == "create":
            print(json.dumps(c.request("registry", "POST", base, json={"name": args.name, "description": args.description}), indent=1))
        elif args.action == "upload":
            version = upload(c, ws, args.dataset or _default_name(args.path[0]), [Path(p) for p in args.path],
                             message=args.message, extract=args.extract, quiet=args.quiet)
            print(f"{version['dataset']} version {version['version']}: {version['file_count']} files, {human(version['size_bytes'])}")
        elif args.action == "versions":
            rows = c.request("registry", "GET", f"{base}/{quote(args.name)}/versions")
            _print_listing(rows, args.json,
                           ["version", "file_count", "size", "created_by", "created_at", "in_use_by", "message"],
                           size=lambda r: human(r["size_bytes"]), in_use_by=lambda r: ",".join(r["in_use_by"]))
        elif args.action == "download":
            download(c, ws, args.name, args.version, args.file, args.output)
        elif args.action == "delete":
            if args.version:
                c.request("registry", "DELETE", f"{base}/{quote(args.name)}/versions/{quote(args.version)}")
                print(f"deleted version {args.version} of {args.name}")
            else:
                c.request("registry", "DELETE", f"{base}/{quote(args.name)}")
                print(f"deleted dataset {args.name}")
    return 0


def _default_name(path: str) -> str:
    name = Path(path).resolve().name.lower()
    for suffix in (".tar.gz", ".tgz", ".zip", ".tar"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def download(c, ws: str, name: str, version: str, file: str | None, output: str | None) -> None:
    from flightbase.client import ApiError

    base = f"{c.url}/services/registry/api/v1/workspaces/{quote(ws)}/datasets/{quote(name)}/versions/{quote(version)}"
    if file:
        url, target = f"{base}/files/{quote(file)}", Path(output or Path(file).name)
    else:
        v = c.request("registry", "GET", f"workspaces/{quote(ws)}/datasets/{quote(name)}/versions/{quote(version)}")
        url, target = f"{base}/archive", Path(output or f"{name}-v{v['version']}.tar")
    with c._http.stream("GET", url) as resp:
        if resp.status_code >= 400:
            resp.read()
            body = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
            raise ApiError(resp.status_code, body.get("message", resp.reason_phrase), body.get("field"), body)
        tmp = target.with_name(target.name + ".part")
        with open(tmp, "wb") as out:
            for block in resp.iter_bytes(READ):
                out.write(block)
        os.replace(tmp, target)
    print(f"wrote {target}")


def cmd_images(args) -> int:
    with _client() as c:
        ws = _ws(args)
        base = f"workspaces/{quote(ws)}/images"
        if args.action == "list":
            rows = c.request("registry", "GET", base)
            if _print_listing(rows, args.json, ["name", "reference", "frameworks", "source", "created_by"],
                              frameworks=lambda r: ",".join(r["frameworks"])) and rows:
                print(f"\nimages run as: {rows[0]['runs_as']}")
        elif args.action == "register":
            body = {"name": args.name, "reference": args.reference, "description": args.description,
                    "frameworks": args.frameworks}
            print(json.dumps(c.request("registry", "POST", base, json=body), indent=1))
        elif args.action == "upload":
            archive = Path(args.archive)
            if not archive.is_file():
                raise ValueError(f"archive: {args.archive!r} is not a file")
            size = archive.stat().st_size
            progress = Progress(size, f"upload {args.name}", args.quiet)
            params = {"name": args.name, "tag": args.tag, "description": args.description, "frameworks": args.frameworks}
            with open(archive, "rb") as fh:
                out = c.request("registry", "POST", f"{base}/upload", params=params,
                                content=Counting(chunks(fh, size), progress),
                                headers={"Content-Type": "application/x-tar", "Content-Length": str(size)})
            progress.finish()
            print(json.dumps(out, indent=1))
    return 0
