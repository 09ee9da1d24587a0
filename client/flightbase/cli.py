"""The ``flightbase`` command.

The subcommands talk to a running platform through :class:`flightbase.client.Client`.
Bad input exits with code 2 and one line on stderr; so does an error answered by a
service. The server distribution adds ``flightbase up`` (start the embedded platform)
and ``flightbase bench replay`` (trace replay) through its ``flightbase.commands``
entry points; this package never imports the server.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

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


# The server's subcommands: entry point name (a dotted path of parsers) and what to say when
# the server is not installed.
SERVER_COMMANDS = {
    "up": "start the embedded platform (hub, proxy, services)",
    "bench.replay": "replay a GPU cluster trace in simulated time",
}


def _server_command(name: str):
    """The ``flightbase.commands`` entry point that adds ``name``, or None."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="flightbase.commands", name=name):
        return ep.load()
    return None


def _add_server_command(sub, name: str) -> None:
    add = _server_command(name)
    if add is not None:
        add(sub)
        return
    words = name.replace(".", " ")

    def missing(args) -> int:
        return _fail(f"'flightbase {words}' needs the Flightbase server: pip install flightbase-server")

    sp = sub.add_parser(name.rsplit(".", 1)[-1], help=SERVER_COMMANDS[name] + " (needs the server)",
                        add_help=False)
    sp.set_defaults(func=missing, takes_any_arguments=True)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="flightbase", description="Share a pool of GPUs among teams, on JupyterHub.")
    p.add_argument("--version", action="version", version=f"flightbase {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    _add_server_command(sub, "up")

    info = sub.add_parser("info", help="what the platform offers (GPUs or CPU slots, policy)")
    info.set_defaults(func=cmd_info)

    ws = sub.add_parser("workspaces", help="list (with no action), show, create and change workspaces")
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
    _add_server_command(bench_sub, "bench.replay")
    from flightbase import cli_comms

    cli_comms.add_bench_parser(bench_sub)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        try:
            return _main(argv)
        finally:  # what is still buffered goes now, while a closed pipe can be answered (also after --help)
            sys.stdout.flush()
    except BrokenPipeError:
        # the reader went away (``flightbase queue | head``): stop quietly, as a command killed by
        # SIGPIPE does, instead of a traceback; stdout goes to /dev/null so that the interpreter's
        # last flush at exit does not fail on the closed pipe again (Python's "Note on SIGPIPE")
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + signal.SIGPIPE


# Commands whose first word is an action and which list when given none.
LISTING = ("workspaces", "models", "datasets", "images")


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Parse ``argv``.  A command of :data:`LISTING` given no action lists.

    For a command that passes arguments on (``submit``: the entry point's, after ``--``), what
    follows the first ``--`` is those arguments wherever the options stand: argparse alone
    matches the ``nargs="*"`` positional, empty, before options that follow the code, and calls
    the rest unrecognized (``submit train.py -w vision -- --epochs 3``)."""
    if argv[:1] and argv[0] in LISTING and (len(argv) == 1 or argv[1].startswith("-")
                                            and argv[1] not in ("-h", "--help")):
        argv = [argv[0], "list", *argv[1:]]  # `flightbase datasets -w vision` lists, as `flightbase jobs` does
    args, extra = parser.parse_known_args(argv)
    dest = getattr(args, "passthrough", None)
    if dest is not None and extra and "--" in argv:
        after = argv[argv.index("--") + 1:]
        if after and extra[-len(after):] == after:
            extra = extra[:-len(after)]
            setattr(args, dest, [*(getattr(args, dest) or []), *after])
        if extra[-1:] == ["--"]:
            extra = extra[:-1]
    return args, extra


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args, extra = _parse(parser, sys.argv[1:] if argv is None else list(argv))
    if extra and not getattr(args, "takes_any_arguments", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
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
