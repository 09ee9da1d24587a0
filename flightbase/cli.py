"""The ``flightbase`` command.

``flightbase up`` starts the embedded platform; the other subcommands talk to a
running one through :class:`flightbase.client.Client`. Bad input exits with
code 2 and one line on stderr; so does an error answered by a service.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from flightbase import __version__
from flightbase.cli_common import key_values, table


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit code 2
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def _fail(message: str) -> int:
    sys.stderr.write(f"flightbase: error: {message}\n")
    return 2


def _print(data, as_json: bool, columns: list[str] | None = None) -> None:
    if as_json or columns is None:
        print(json.dumps(data, indent=1, default=str))
        return
    table(data if isinstance(data, list) else [data], columns)


def _settings_from(pairs: list[str]) -> dict:
    return key_values(pairs, "settings")


def cmd_up(args) -> int:
    from flightbase import platform

    try:
        return platform.up(port=args.port, data_dir=Path(args.data_dir), gpu_spec=args.gpus, ip=args.ip, policy=args.policy,
                           single_user_dev=args.single_user_dev)
    except platform.UsageError as exc:
        return _fail(str(exc))


def _client():
    from flightbase.client import Client

    return Client()


def cmd_info(args) -> int:
    with _client() as c:
        _print(c.info(), True)
    return 0


def cmd_workspaces(args) -> int:
    with _client() as c:
        if args.action == "list":
            data = c.workspaces()
            for ws in data:
                ws["gpu_quota"] = (ws.get("settings") or {}).get("gpu_quota")
                ws["members"] = ",".join(ws["members"])
            _print(data, args.json, ["name", "gpu_quota", "members"])
        elif args.action == "show":
            _print(c.workspace(args.name), True)
        elif args.action == "create":
            _print(c.create_workspace(args.name, **_settings_from(args.settings)), True)
        elif args.action == "set":
            _print(c.update_workspace(args.name, **_settings_from(args.settings)), True)
        elif args.action == "add-member":
            c.add_member(args.name, args.user)
        elif args.action == "remove-member":
            c.remove_member(args.name, args.user)
    return 0


def cmd_bench(args) -> int:
    from flightbase_jobqueue.sim import cli as sim_cli

    return sim_cli.run(args)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="flightbase", description="Share a pool of GPUs among teams, on JupyterHub.")
    p.add_argument("--version", action="version", version=f"flightbase {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

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

    info = sub.add_parser("info", help="what the platform offers (GPUs or CPU slots, policy)")
    info.set_defaults(func=cmd_info)

    ws = sub.add_parser("workspaces", help="list, show, create and change workspaces")
    ws_sub = ws.add_subparsers(dest="action", required=True, parser_class=_Parser)
    ls = ws_sub.add_parser("list")
    ls.add_argument("--json", action="store_true")
    for name in ("show", "create", "set"):
        sp = ws_sub.add_parser(name)
        sp.add_argument("name")
        if name != "show":
            sp.add_argument("settings", nargs="*", metavar="KEY=VALUE")
    for name in ("add-member", "remove-member"):
        sp = ws_sub.add_parser(name)
        sp.add_argument("name")
        sp.add_argument("user")
    ws.set_defaults(func=cmd_workspaces)

    from flightbase import cli_builtin, cli_datasets, cli_jobs, cli_usage

    cli_jobs.add_parsers(sub)
    cli_builtin.add_parsers(sub)
    cli_datasets.add_parsers(sub)
    cli_usage.add_parsers(sub)

    bench = sub.add_parser("bench", help="benchmarks (trace replay through the scheduler, all-reduce bandwidth)")
    bench_sub = bench.add_subparsers(dest="bench", required=True, parser_class=_Parser)
    replay = bench_sub.add_parser("replay", help="replay a GPU cluster trace in simulated time")
    from flightbase_jobqueue.sim import cli as sim_cli

    sim_cli.add_arguments(replay)
    replay.set_defaults(func=cmd_bench)
    from flightbase import cli_comms

    cli_comms.add_bench_parser(bench_sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from flightbase.client import ApiError, ConfigError

    try:
        return args.func(args) or 0
    except ConfigError as exc:
        return _fail(str(exc))
    except ApiError as exc:
        return _fail(f"{exc.message}" + (f" (HTTP {exc.status})" if exc.status else ""))
    except ValueError as exc:
        return _fail(str(exc))


if __name__ == "__main__":
    sys.exit(main())
