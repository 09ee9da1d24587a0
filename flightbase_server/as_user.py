"""Work on a person's own files as that person, never as root.

A person's home and notebook folders are theirs to change: they may replace a
folder with a link to ``/etc`` at any time. Whatever the platform must do
there (make the workspace's folder, link the chosen datasets in) is done by a
short process running as the person's account, with the groups of the
workspace in use only, so a planted link leads nowhere the person could not
already go (:mod:`flightbase_server.hostfs` has the rule).

    python -m flightbase_server.as_user OPERATION      (arguments as JSON on stdin, result as JSON on stdout)

:func:`run` starts it; the operations are the ``op_*`` functions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TIMEOUT_SECONDS = 60


class AsUserError(RuntimeError):
    pass


def run(operation: str, args: dict, *, uid: int | None, gid: int | None, groups: list[int] = ()) -> dict:
    """Run ``operation`` as ``uid``:``gid`` with exactly ``groups`` as supplementary groups (None: as this process)."""
    as_other = uid is not None and uid != os.geteuid()
    proc = subprocess.run(
        [sys.executable, "-m", "flightbase_server.as_user", operation],
        input=json.dumps(args), capture_output=True, text=True, timeout=TIMEOUT_SECONDS, cwd="/",
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONPATH": os.environ.get("PYTHONPATH", "")},
        user=uid if as_other else None, group=gid if as_other else None,
        extra_groups=list(groups) if as_other else None, umask=0o077,
    )
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise AsUserError(lines[-1] if lines else f"{operation} failed with exit code {proc.returncode}")
    return json.loads(proc.stdout)


# -- the operations (run as the person) ----------------------------------------------------------

def op_notebook_folder(args: dict) -> dict:
    """``<home>/<workspace>``, made if missing, with ``datasets/<name>`` linked to each chosen dataset version.

    Stale links in ``datasets/`` go; a real file or folder of a dataset's name
    is left alone and reported as blocked. A ``datasets`` that is itself a link
    (the person's doing) is replaced by a folder.
    """
    folder = Path(args["home"]) / args["workspace"]
    folder.mkdir(mode=0o700, exist_ok=True)
    wanted = {d["name"]: d["path"] for d in args.get("datasets") or ()}
    links = folder / "datasets"
    blocked: list[str] = []
    if links.is_symlink():
        links.unlink()
    if wanted or links.is_dir():
        links.mkdir(exist_ok=True)
        for entry in links.iterdir():
            if entry.is_symlink() and entry.name not in wanted:
                entry.unlink()
        for name, target in wanted.items():
            link = links / name
            if link.is_symlink():
                link.unlink()
            elif link.exists():
                blocked.append(name)
                continue
            link.symlink_to(target, target_is_directory=True)
    return {"folder": str(folder), "blocked": blocked}


OPERATIONS = {"notebook-folder": op_notebook_folder}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in OPERATIONS:
        sys.stderr.write(f"usage: python -m flightbase_server.as_user {{{','.join(OPERATIONS)}}} < args.json\n")
        return 2
    try:
        result = OPERATIONS[argv[0]](json.loads(sys.stdin.read()))
    except OSError as exc:
        sys.stderr.write(f"{argv[0]}: {exc.strerror}: {exc.filename}\n")
        return 1
    sys.stdout.write(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
