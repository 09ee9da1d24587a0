"""The child process of :func:`flightbase_server.service.db.upgrade_apart`.

Reads ``{"url": ..., "migrations": ...}`` on its standard input, brings that database's schema
to the newest migration in that folder, and exits 0; or writes one line on standard error and
exits 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from flightbase_server.service.db import make_engine, upgrade


def main() -> int:
    request = json.loads(sys.stdin.read())
    engine = make_engine(request["url"])
    try:
        upgrade(engine, Path(request["migrations"]))
    except Exception as exc:  # one line for the parent's error; the traceback is no use there
        print(f"{type(exc).__name__}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
