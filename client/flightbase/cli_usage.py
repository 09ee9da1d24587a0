"""``flightbase usage``: GPU-hours per workspace, person and day, as a table, JSON or CSV.

    flightbase usage                                  # every workspace you can see, the last 30 days
    flightbase usage -w vision --by user,day          # who used how much, day by day
    flightbase usage --from 2026-12-01 --to 2026-12-08 --csv > week.csv

``--from`` is included and ``--to`` excluded; dates are UTC days, datetimes
are UTC unless they carry an offset. Bad flags exit 2 with one line, before
anything is asked of the platform.
"""

from __future__ import annotations

import json

from flightbase.cli_common import table, workspace_arg


def add_parsers(sub) -> None:
    p = sub.add_parser("usage", help="GPU usage (GPU-hours) per workspace, user and/or day")
    workspace_arg(p)
    p.add_argument("--from", dest="start", metavar="DATE",
                   help="start, included: an ISO date or datetime (default: 30 days ago, by UTC day)")
    p.add_argument("--to", dest="end", metavar="DATE", help="end, excluded: an ISO date or datetime (default: now)")
    p.add_argument("--by", default="workspace", metavar="KEYS",
                   help="group by a comma list of workspace, user, day (default workspace)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="print CSV with a header row")
    fmt.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_usage)


def check_args(args) -> str:
    """Check the flags here (a ValueError naming the flag); returns the group_by list."""
    from flightbase.usage_params import parse_group_by, parse_time

    try:
        keys = parse_group_by(args.by)
    except ValueError as exc:
        raise ValueError(f"--by: {exc}") from None
    bounds = {}
    for flag, value in (("--from", args.start), ("--to", args.end)):
        if value is not None:
            try:
                bounds[flag] = parse_time(value)
            except ValueError as exc:
                raise ValueError(f"{flag}: {exc}") from None
    if len(bounds) == 2 and bounds["--to"] <= bounds["--from"]:
        raise ValueError("--to: must be after --from")
    return ",".join(keys)


def cmd_usage(args) -> int:
    from flightbase.client import Client

    group_by = check_args(args)
    with Client() as c:
        out = c.usage(args.workspace, start=args.start, end=args.end, group_by=group_by, csv=args.csv)
    if args.csv:
        print(out, end="")
        return 0
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    keys = out["group_by"]
    rows = [{**r, "gpu_hours": f"{r['gpu_hours']:.3f}", "gpu_seconds": f"{r['gpu_seconds']:.1f}"} for r in out["rows"]]
    table(rows, [*keys, "gpu_hours", "gpu_seconds"])
    print(f"total {out['total_gpu_hours']:.3f} GPU-hours ({out['total_gpu_seconds']:.1f} GPU-seconds) "
          f"from {out['from']} to {out['to']}")
    return 0
