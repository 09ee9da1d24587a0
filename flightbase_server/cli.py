"""``flightbase up``: the server's subcommand of the client's ``flightbase`` command.

The client's CLI (client/flightbase/cli.py) finds it through the ``flightbase.commands``
entry point ``up`` of this distribution (pyproject.toml), so the client never imports
the server: without the server installed, ``flightbase up`` says so and exits 2.
"""

from __future__ import annotations

import sys
from pathlib import Path


def cmd_up(args) -> int:
    from flightbase_server import platform

    try:
        return platform.up(port=args.port, data_dir=Path(args.data_dir), gpu_spec=args.gpus, ip=args.ip,
                           policy=args.policy, single_user_dev=args.single_user_dev)
    except platform.UsageError as exc:
        sys.stderr.write(f"flightbase: error: {exc}\n")
        return 2


def add_up_parser(sub) -> None:
    up = sub.add_parser("up", help="start the embedded platform (hub, proxy, services)")
    up.add_argument("--port", type=int, default=8000, help="public port of the proxy (default 8000)")
    up.add_argument("--ip", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    up.add_argument("--data-dir", default="data", help="where state lives (default ./data)")
    up.add_argument("--gpus", default="auto", help="'auto' (NVML) or a number of GPUs / CPU slots")
    up.add_argument("--policy", default="las", help="scheduler policy (default las)")
    up.add_argument("--single-user-dev", action="store_true",
                    help="not running as root: let the administrator's own code run as this account "
                         "(one-person development only; everybody else's code is refused)")
    up.set_defaults(func=cmd_up)
