"""``flightbase submit / jobs / logs / cancel / trainings``: trainings from the command line.

    flightbase submit train.py --gpus 2 --launcher horovod -- --epochs 3
    flightbase submit ./project --entrypoint train.py --grid "lr=[0.1,0.01] batch=[32,64]" --metric loss
    flightbase submit train.py --secret-env WANDB_API_KEY   # the value of $WANDB_API_KEY, kept secret
    flightbase jobs
    flightbase logs JOB --follow
    flightbase cancel JOB

Errors raise ``ValueError`` or :class:`flightbase.client.ApiError`; ``cli.main``
prints them on one line and exits with code 2.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys

from flightbase.cli_common import key_values, table, workspace_arg


def _workspace(args, client) -> str:
    return client.resolve_workspace(args.workspace)


def _when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%H:%M:%S") if ts else ""


def _start(q: dict) -> str:
    """The estimated start, and its range when it is uncertain (wider than 2 min):
    ``14:10:05 (13:55-14:40)``."""
    est, rng = q.get("estimated_start"), q.get("estimated_start_range")
    text = _when(est)
    if est and rng and rng[1] - rng[0] >= 120:
        hm = lambda ts: dt.datetime.fromtimestamp(ts).strftime("%H:%M")  # noqa: E731
        text += f" ({hm(rng[0])}-{hm(rng[1])})"
    return text


def add_parsers(sub) -> None:
    p = sub.add_parser("submit", help="run code as a training (one job, or a sweep of jobs)")
    workspace_arg(p)
    p.add_argument("code", help="a script, an archive (.zip, .tar.gz) or a folder")
    p.add_argument("args", nargs="*", help="arguments for the entry point (after --)")
    p.set_defaults(passthrough="args")  # what follows -- goes to the entry point (cli._parse)
    p.add_argument("-e", "--entrypoint", help="the script to run inside the code (default: CODE when it is a .py)")
    p.add_argument("-n", "--name", help="training name (default: from the entry point)")
    p.add_argument("-g", "--gpus", type=int, default=1, help="GPUs in all (default 1)")
    p.add_argument("--gpus-per-node", type=int, help="ask for nodes of this many GPUs each")
    p.add_argument("-l", "--launcher", default=None, choices=["horovod", "torchrun", "mpi", "none"],
                   help="default: horovod for more than one GPU, else none")
    p.add_argument("--image", default=None)
    p.add_argument("--dataset", action="append", default=[], help="mount this dataset (name or name@version)")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                   help="an environment variable of the job (every member of the workspace sees it)")
    p.add_argument("--secret-env", action="append", default=[], metavar="NAME[=VALUE]",
                   help="a secret environment variable of the job: the API never shows its value again, to "
                        "anyone; NAME alone takes the value from your own environment, so that it is not in "
                        "your shell history or on this command's line (ps)")
    p.add_argument("--max-runtime", type=float, help="seconds")
    p.add_argument("--priority", type=int, default=0)
    p.add_argument("--no-preempt", action="store_true", help="never preempt (within the workspace's quota)")
    p.add_argument("--p2p", action="store_true", help="GPUDirect peer-to-peer")
    p.add_argument("--rdma", action="store_true", help="GPUDirect RDMA")
    p.add_argument("--grid", help="a sweep: \"lr=[0.1,0.01] batch=[32,64]\"")
    p.add_argument("--parallel", type=int, default=1, help="jobs of the sweep at once (default 1: in order)")
    p.add_argument("--metric", help="the reported metric that ranks the sweep's jobs")
    p.add_argument("--goal", choices=["min", "max"], default="min")
    p.add_argument("-f", "--follow", action="store_true", help="stream the (first) job's logs until it ends")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("jobs", help="your jobs, newest first; `jobs show JOB`: one job, with what NCCL did")
    p.add_argument("action", nargs="?", choices=["show"], help="show one job's details")
    p.add_argument("job", nargs="?", help="the job to show")
    workspace_arg(p)
    p.add_argument("--training")
    p.add_argument("--state")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser("queue", help="queued jobs with their position, estimated start and reason")
    workspace_arg(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_queue)

    p = sub.add_parser("logs", help="a job's output (all ranks, or one)")
    p.add_argument("job")
    p.add_argument("--rank", type=int)
    p.add_argument("-f", "--follow", action="store_true", help="keep streaming until the job ends")
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("cancel", help="cancel a job, or a whole training")
    p.add_argument("id", help="a job id or a training id")
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser("trainings", help="your workspaces' trainings, newest first; or show one, or pause, "
                                         "resume, retry or cancel its sweep")
    p.add_argument("action", nargs="?", default="list", choices=["list", "show", "pause", "resume", "retry", "cancel"])
    p.add_argument("id", nargs="?")
    workspace_arg(p)
    p.add_argument("--json", action="store_true", help="the list as JSON")
    p.set_defaults(func=cmd_trainings)


def secret_values(items: list[str], environ) -> dict[str, str]:
    """``--secret-env`` values: ``NAME=VALUE``, or ``NAME`` for the value of ``$NAME`` here.

    A value given on the command line is in the shell's history and, while the
    command runs, in every account's ``ps``; ``NAME`` alone avoids both."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not name:
            raise ValueError(f"secret-env: expected NAME or NAME=VALUE, got {item!r}")
        if not sep:
            if name not in environ:
                raise ValueError(f"secret-env: {name} is not set in your environment "
                                 f"(export it first, or give {name}=VALUE)")
            value = environ[name]
        out[name] = value
    return out


def _client():
    from flightbase.client import Client

    return Client()


def cmd_submit(args) -> int:
    from flightbase.grid import SweepError, parse_grid

    with _client() as c:
        ws = _workspace(args, c)
        sweep = None
        if args.grid:
            try:
                sweep = {"grid": parse_grid(args.grid), "parallel": args.parallel, "metric": args.metric, "goal": args.goal}
            except SweepError as exc:
                raise ValueError(str(exc)) from None
        launcher = args.launcher or ("horovod" if args.gpus > 1 else "none")
        t = c.submit(ws, args.code, entrypoint=args.entrypoint, name=args.name, args=args.args, gpus=args.gpus,
                     gpus_per_node=args.gpus_per_node, launcher=launcher, image=args.image, datasets=args.dataset,
                     env=key_values(args.env, "env"), secret_env=secret_values(args.secret_env, os.environ),
                     max_runtime=args.max_runtime, priority=args.priority,
                     preemptible=not args.no_preempt, gpudirect_p2p=args.p2p, gpudirect_rdma=args.rdma, sweep=sweep)
        if args.json:
            print(json.dumps(t, indent=1))
        else:
            print(f"training {t['id']} ({t['name']}) in {t['workspace']}: {len(t['jobs'])} job(s)")
            for j in t["jobs"]:
                print(f"  job {j['id']}  {j['state']}{' (held)' if j['held'] else ''}  {j['name']}")
        if args.follow:
            first = t["jobs"][0]["id"]
            for text in c.logs(first, follow=True):
                sys.stdout.write(text)
                sys.stdout.flush()
            job = c.wait(first)
            print(f"job {first}: {job['state']} (exit code {job['exit_code']})", file=sys.stderr)
            return 0 if job["state"] == "succeeded" else 1
    return 0


def cmd_jobs(args) -> int:
    if args.action == "show":
        if not args.job:
            raise ValueError("job: name the job to show (flightbase jobs show JOB)")
        from flightbase.cli_comms import cmd_job_show

        return cmd_job_show(args.job, args.json)
    with _client() as c:
        rows = c.jobs(args.workspace, training=args.training, state=args.state)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for r in rows:
        r["gpus"] = f"{r['gpus']} {'slot' if r['gpu_kind'] == 'cpu-slot' else 'gpu'}"
        r["submitted"] = _when(r["submitted_at"])
        r["where"] = ",".join(f"{h}:{','.join(map(str, g))}" for h, g in (r["placement"] or {}).items())
        r["note"] = (r["queue"] or {}).get("reason") or r.get("reason") or ""
    table(rows, ["id", "workspace", "name", "state", "gpus", "where", "submitted", "exit_code", "note"])
    return 0


def cmd_queue(args) -> int:
    with _client() as c:
        rows = c.queue(args.workspace)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for r in rows:
        q = r["queue"] or {}
        r["position"] = q.get("position") or "held"  # a held job (position 0) is listed after the queue
        r["in_workspace"] = q.get("workspace_position") or ""
        r["estimated_start"] = _start(q)
        r["reason"] = q.get("reason", "")
    table(rows, ["position", "in_workspace", "id", "workspace", "name", "gpus", "estimated_start", "reason"])
    return 0


def cmd_logs(args) -> int:
    with _client() as c:
        out = c.logs(args.job, rank=args.rank, follow=args.follow)
        if isinstance(out, str):
            sys.stdout.write(out)
        else:
            for text in out:
                sys.stdout.write(text)
                sys.stdout.flush()
    return 0


def cmd_cancel(args) -> int:
    from flightbase.client import ENDED, ApiError

    # The answer comes before running processes have stopped (within seconds): a job still
    # running then is being cancelled, which is what the person should read, not "running".
    with _client() as c:
        try:
            job = c.cancel(args.id)
            print(f"job {job['id']}: " + (job["state"] if job["state"] in ENDED else "cancelling (stops within seconds)"))
        except ApiError as exc:
            if exc.status != 404:
                raise
            t = c.training_action(args.id, "cancel")
            live = sum(n for state, n in (t.get("progress") or {}).items() if state not in ENDED)
            print(f"training {t['id']}: " + (f"cancelling ({live} job(s) stop within seconds)" if live else t["state"]))
    return 0


def cmd_trainings(args) -> int:
    if args.action == "list":
        if args.id:
            raise ValueError(f"id: 'flightbase trainings' lists; to show {args.id}: flightbase trainings show {args.id}")
        with _client() as c:
            rows = c.trainings(args.workspace)
        if args.json:
            print(json.dumps(rows, indent=1, default=str))
            return 0
        for r in rows:
            created = dt.datetime.fromisoformat(str(r["created_at"]).replace("Z", "+00:00"))
            r["created"] = created.astimezone().strftime("%Y-%m-%d %H:%M")
            r["jobs"] = ", ".join(f"{n} {state}" for state, n in sorted(r.get("progress", {}).items())) or "-"
        table(rows, ["id", "workspace", "name", "state", "jobs", "created", "created_by"])
        return 0
    if not args.id:
        raise ValueError(f"id: name the training (flightbase trainings {args.action} TRAINING)")
    with _client() as c:
        t = c.training(args.id) if args.action == "show" else c.training_action(args.id, args.action)
    print(json.dumps(t, indent=1, default=str))
    return 0
