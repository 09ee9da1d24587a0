"""IPython magics: run a notebook cell as a distributed training, and the CLI in a line.

    %load_ext flightbase

    %%flightbase --gpus 4 --launcher horovod
    import horovod.torch as hvd
    hvd.init()
    ...

    %flightbase jobs
    %flightbase queue
    %flightbase logs JOB --follow
    %flightbase cancel JOB

The cell magic packs the cell as ``flightbase_cell.py`` together with the files
of the notebook's working directory (the way ``flightbase submit FOLDER`` packs a
folder: hidden files and ``__pycache__`` stay out), so the cell can import the
modules and read the small files that sit next to the notebook. ``--no-files``
sends the cell alone; ``--files DIR`` sends another folder; a folder larger than
``--files-limit`` megabytes is refused rather than uploaded by surprise.

The line magic is the ``flightbase`` command itself (every subcommand but
``up``), run in the kernel. Errors are one line naming the field; never a
traceback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import sys
import time

import httpx
from IPython.core.magic import Magics, line_cell_magic, magics_class

from flightbase.client import ENDED

CELL_SCRIPT = "flightbase_cell.py"


class UsageError(ValueError):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)

    def exit(self, status=0, message=None):  # --help
        if message:
            sys.stderr.write(message)
        raise _Done()


class _Done(Exception):
    pass


def cell_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="%%flightbase", description="Run the cell as a training and stream its logs here.")
    p.add_argument("-g", "--gpus", type=int, default=1, help="GPUs in all (default 1)")
    p.add_argument("--nodes", type=int, help="spread the GPUs evenly over this many nodes")
    p.add_argument("-l", "--launcher", choices=["horovod", "torchrun", "mpi", "none"],
                   help="default: horovod for more than one GPU, else none")
    p.add_argument("-n", "--name", default="notebook-cell", help="training name (default notebook-cell)")
    p.add_argument("-w", "--workspace", help="default: $FLIGHTBASE_WORKSPACE, else your only workspace")
    p.add_argument("--image")
    p.add_argument("--dataset", action="append", default=[], help="mount this dataset (name or name@version)")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--max-runtime", type=float, help="seconds")
    p.add_argument("--files", metavar="DIR", help="folder sent with the cell (default: the working directory)")
    p.add_argument("--no-files", action="store_true", help="send the cell alone")
    p.add_argument("--files-limit", type=float, default=50, metavar="MB",
                   help="refuse a folder larger than this (default 50 MB)")
    p.add_argument("--no-wait", action="store_true", help="submit and return at once")
    p.add_argument("args", nargs="*", help="arguments for the cell's script (sys.argv[1:])")
    return p


def _error(message: str) -> None:
    sys.stderr.write(f"flightbase: error: {message}\n")
    sys.stderr.flush()


def _when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%H:%M:%S") if ts else "unknown"


def status_line(job: dict) -> str:
    """One line saying where a job stands: its place in the queue, where it runs, or how it ended."""
    state, unit = job["state"], "CPU slot" if job["gpu_kind"] == "cpu-slot" else "GPU"
    if state == "queued":
        q = job.get("queue") or {}
        if not q or job.get("held"):
            return f"job {job['id']}: queued" + (f", {q['reason']}" if q.get("reason") else
                                                 " (held until earlier jobs of its sweep end)" if job.get("held") else "")
        return (f"job {job['id']}: queued, position {q['position']} ({q['workspace_position']} in {job['workspace']}), "
                f"estimated start {_when(q.get('estimated_start'))}: {q['reason']}")
    where = "; ".join(f"{host} {unit}s {','.join(map(str, gpus))}" for host, gpus in (job.get("placement") or {}).items())
    if state in ("starting", "running"):
        return f"job {job['id']}: {state} on {where or 'its nodes'} since {_when(job.get('started_at'))}"
    if state in ENDED:
        took = ""
        if job.get("started_at") and job.get("finished_at"):
            took = f" after {job['finished_at'] - job['started_at']:.1f} s"
        code = f", exit code {job['exit_code']}" if job.get("exit_code") is not None else ""
        why = f": {job['reason']}" if job.get("reason") and state != "succeeded" else ""
        return f"job {job['id']}: {state}{code}{took}{why}"
    return f"job {job['id']}: {state}" + (f" ({job['reason']})" if job.get("reason") else "")


class Progress:
    """A line updated in place in a notebook (a display with an id); printed anew in a terminal."""

    def __init__(self):
        from IPython.display import display

        self._last = None
        self._handle = display(_Text(""), display_id=True)

    def show(self, text: str) -> None:
        if text != self._last:
            self._last = text
            if self._handle is not None:
                self._handle.update(_Text(text))
            else:
                print(text, flush=True)


class _Text:
    def __init__(self, text: str):
        self.text = text

    def _repr_pretty_(self, p, cycle):
        p.text(self.text)

    def __repr__(self):
        return self.text


def watch(client, job_id: str, *, interval: float = 1.0, out=None) -> dict | None:
    """Show the job's progress, stream its logs, and return it once ended (None if interrupted)."""
    out = out or sys.stdout
    progress = Progress()
    try:
        job = client.job(job_id)
        while job["state"] in ("queued", "preempted"):
            progress.show(status_line(job))
            time.sleep(interval)
            job = client.job(job_id)
        progress.show(status_line(job))
        for text in client.logs(job_id, follow=True):
            out.write(text)
            out.flush()
        job = client.wait(job_id, interval=0.5)
    except KeyboardInterrupt:
        _interrupted(job_id)
        return None
    except httpx.HTTPError as exc:  # the stream broke (the service restarting): the job goes on
        _error(f"lost the connection to the jobqueue ({exc}); job {job_id} goes on: "
               f"`%flightbase logs {job_id} --follow` to follow it again")
        return None
    progress.show(status_line(job))
    print(status_line(job), file=out if job["state"] == "succeeded" else sys.stderr, flush=True)
    return job


def _interrupted(job_id: str) -> None:
    print(f"\nstopped watching; job {job_id} keeps running. "
          f"Follow it again with `%flightbase logs {job_id} --follow`; cancel it with `%flightbase cancel {job_id}`.",
          file=sys.stderr, flush=True)


def submit_cell(client, cell: str, opts) -> dict:
    """Upload the cell (and its folder) and create the training; returns the training."""
    from flightbase.cli_common import key_values

    workspace = client.resolve_workspace(opts.workspace)
    opts.launcher = opts.launcher or ("horovod" if opts.gpus > 1 else "none")
    spec = {"gpus": opts.gpus, "launcher": opts.launcher,
            "image": opts.image, "datasets": opts.dataset, "env": key_values(opts.env, "env"),
            "max_runtime": opts.max_runtime, "args": opts.args}
    if opts.nodes is not None:
        if opts.nodes < 1 or opts.gpus % opts.nodes:
            raise UsageError(f"nodes: --gpus {opts.gpus} cannot be spread evenly over --nodes {opts.nodes}")
        spec["gpus_per_node"] = opts.gpus // opts.nodes
    folder = None if opts.no_files else (opts.files or os.getcwd())
    if folder is not None:
        _check_folder_size(folder, opts.files_limit)
    code = client.upload_files(workspace, {CELL_SCRIPT: cell.encode()}, folder)
    return client.submit(workspace, None, entrypoint=CELL_SCRIPT, name=opts.name, code_id=code["id"], **spec)


def _check_folder_size(folder: str, limit_mb: float) -> None:
    from flightbase.client import code_files

    if not os.path.isdir(folder):
        raise UsageError(f"files: {folder} is not a folder")
    total = 0
    for path in code_files(folder):
        total += path.stat().st_size
        if total > limit_mb * 1e6:
            raise UsageError(f"files: {folder} holds more than {limit_mb:g} MB; "
                             "send the cell alone with --no-files, or name a smaller folder with --files DIR")


@magics_class
class FlightbaseMagics(Magics):
    @line_cell_magic
    def flightbase(self, line: str, cell: str | None = None):
        """``%%flightbase [options]``: run the cell as a training; ``%flightbase SUBCOMMAND``: the CLI."""
        if cell is None:
            self._line(line)
        else:
            self._cell(line, cell)

    def _line(self, line: str) -> None:
        from flightbase import cli

        try:
            argv = shlex.split(line)
        except ValueError as exc:
            return _error(f"arguments: {exc}")
        if not argv:
            return _error("say what to do: %flightbase jobs | queue | logs JOB [--follow] | cancel JOB | ... "
                          "(%flightbase --help lists them)")
        if argv[0] == "up":
            return _error("up: start the platform from a shell, not from a notebook")
        try:
            cli.main(argv)
        except SystemExit:  # argparse has printed its one line (or the help)
            pass
        except KeyboardInterrupt:
            job = next((a for a in argv[1:] if not a.startswith("-")), "JOB")
            _interrupted(job)

    def _cell(self, line: str, cell: str) -> None:
        from flightbase.client import ApiError, Client, ConfigError

        try:
            opts = cell_parser().parse_args(shlex.split(line))
            client = Client()
        except _Done:
            return
        except (UsageError, ConfigError, ValueError) as exc:
            return _error(str(exc))
        with client:
            try:
                training = submit_cell(client, cell, opts)
            except ApiError as exc:
                return _error(exc.message + (f" (HTTP {exc.status})" if exc.status else ""))
            except (UsageError, ValueError) as exc:
                return _error(str(exc))
            job_id = training["jobs"][0]["id"]
            print(f"training {training['id']} ({training['name']}) in {training['workspace']}: job {job_id}, "
                  f"{opts.gpus} {'GPU' if opts.gpus == 1 else 'GPUs'}, launcher {opts.launcher}",
                  flush=True)
            if opts.no_wait:
                print(f"follow it with `%flightbase logs {job_id} --follow`", flush=True)
                return
            try:
                watch(client, job_id)
            except ApiError as exc:
                _error(exc.message + (f" (HTTP {exc.status})" if exc.status else ""))
