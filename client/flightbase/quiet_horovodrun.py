"""``horovodrun``, without the environment on the workers' command lines.

``horovodrun --gloo`` starts each worker through a shell: it writes the whole
environment into one command, ``env HOROVOD_RANK=0 ... NAME='value' ...
python -u train.py`` (``horovod.runner.gloo_run._slot_info_to_command_fn``),
and runs it with ``/bin/sh -c`` (``horovod.runner.common.util.safe_shell_exec``).
That shell stays as long as the worker runs (``dash`` does not exec the last
command of ``-c``), and its command line, with every environment value of the job (its
secret values too), is readable by every account of the machine (``ps``,
``/proc/<pid>/cmdline``).

The command need not carry them: a worker on this machine inherits
horovodrun's environment anyway (``safe_shell_exec`` starts the shell with
the environment of its middleman process, which is horovodrun's). So for a
worker on this machine, this entry point leaves out of the command every
variable the worker inherits with the same value; what horovodrun set or
changed itself (e.g. from its own options) stays, and so do the rendezvous
variables (``HOROVOD_RANK``...), which hold nothing secret. A worker on
another host (over ssh, which passes no environment) keeps the full command.

It also ends a worker's processes without horovod's race (:func:`terminate_tree`).

Run as ``python -m flightbase.quiet_horovodrun --gloo ...``
with horovodrun's own arguments (the jobqueue's ``backends/launchers.command``). It is
part of the client distribution because it runs where the job runs: a job's image
holds the client only.
"""

from __future__ import annotations

import os
import re
import sys
import time
from typing import Callable, Mapping


def quiet(slot_info_to_command_fn: Callable, is_local: Callable[[str], bool],
          inherited: Mapping[str, str]) -> Callable:
    """Wrap ``gloo_run._slot_info_to_command_fn``: commands of local workers leave out what they inherit."""

    def wrapped(run_command: str, env: Mapping[str, str]):
        full = slot_info_to_command_fn(run_command, env)
        needed = {key: value for key, value in env.items() if inherited.get(key) != value}
        short = slot_info_to_command_fn(run_command, needed)

        def slot_info_to_command(slot_info) -> str:
            return short(slot_info) if is_local(slot_info.hostname) else full(slot_info)

        return slot_info_to_command

    return wrapped


def _is_local(hostname: str) -> bool:
    from horovod.runner.util import network

    # the test horovod's own _exec_command_fn makes before it runs a command over ssh
    return network.resolve_host_address(hostname) in network.get_local_host_addresses()


# horovod.runner.gloo_run's error when a worker fails (launch_gloo, launch_gloo_elastic)
_WORKER_FAILED = re.compile(r"Horovod detected that one or more processes exited with non-zero status.*"
                            r"Process name: (?P<name>\S+)\s+Exit code: (?P<code>-?\d+)", re.S)


def worker_failed(exc: BaseException) -> tuple[str, int] | None:
    """(rank, exit status for ``sys.exit``) of the first worker to fail, from horovodrun's
    error; None for any other error.  A worker killed by a signal (a negative code) gives
    128 + the signal, as a shell reports it."""
    m = _WORKER_FAILED.search(str(exc)) if isinstance(exc, RuntimeError) else None
    if m is None:
        return None
    code = int(m["code"])
    return m["name"], (128 - code if code < 0 else code if 0 < code < 256 else 1)


def terminate_tree(pid: int, grace: float = 5.0) -> None:
    """End the shell ``pid`` that runs one worker, and every process under it.

    This replaces horovod's ``safe_shell_exec.terminate_executor_shell_and_children``,
    which runs in each worker's middleman when the job is stopped or another worker
    failed.  That one lists the shell's children a second time after it has sent them
    SIGTERM; when the shell has ended in between (it ends when its only child does), psutil
    raises NoSuchProcess, the thread prints its traceback into the job's log, and the
    workers' processes left alive are never killed.  It also kills only the children of
    children that outlived the grace period, never a grandchild whose own parent ended.

    Here every process under the shell is listed once, before any signal: SIGTERM to each,
    ``grace`` seconds to end, then SIGKILL to whatever is left; then the shell, which ends by
    itself once its worker has (its own exit status: what the middleman reads), is given
    ``grace`` seconds to do so before it gets SIGTERM, and as long again before SIGKILL.  (It
    got SIGTERM at once until 2026-12-07: on a loaded machine the shell had not yet run what
    follows its worker, and ended by the signal instead of with its status.)"""
    import signal

    import psutil

    try:
        shell = psutil.Process(pid)
        tree = shell.children(recursive=True)
    except psutil.NoSuchProcess:
        return
    for proc in tree:
        _unless_gone(proc.terminate)
    _, alive = psutil.wait_procs(tree, timeout=grace)
    for proc in alive:
        try:
            started = proc.children(recursive=True)  # what it started during the grace period
        except psutil.NoSuchProcess:
            started = []
        for each in [*started, proc]:
            _unless_gone(each.kill)
    # The middleman waits for the shell and reads its exit status: wait here without reaping it
    # (psutil's wait would, and the middleman's would then read 0, as horovod's function let it).
    if _ended_within(shell, grace):
        return
    try:
        shell.send_signal(signal.SIGTERM)
    except psutil.NoSuchProcess:
        return
    if not _ended_within(shell, grace):
        _unless_gone(shell.kill)


def _ended_within(proc, seconds: float) -> bool:
    """Whether ``proc`` ends (a zombie, or gone) within ``seconds``, without reaping it."""
    deadline = time.monotonic() + seconds
    while not _ended(proc):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _unless_gone(signal_process: Callable[[], None]) -> None:
    """``signal_process()`` (a process's ``terminate`` or ``kill``), for a process that may have
    ended meanwhile."""
    import psutil

    try:
        signal_process()
    except psutil.NoSuchProcess:
        pass


def _ended(proc) -> bool:
    import psutil

    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _install_terminate_tree() -> None:
    from horovod.runner.common.util import safe_shell_exec

    safe_shell_exec.terminate_executor_shell_and_children = terminate_tree


def main() -> int | None:
    from horovod.runner import gloo_run, launch

    _install_terminate_tree()

    gloo_run._slot_info_to_command_fn = quiet(gloo_run._slot_info_to_command_fn, _is_local, dict(os.environ))
    sys.argv[0] = "horovodrun"
    try:
        return launch.run_commandline()
    except RuntimeError as exc:
        # A worker failed: its own output (the traceback of the person's code) is already in
        # the log.  Say which rank, and end with its exit status, instead of horovodrun's own
        # traceback and exit status 1 whatever the code's was.
        failed = worker_failed(exc)
        if failed is None:
            raise
        print(f"horovodrun: rank {failed[0]} was the first to fail, with exit status {failed[1]}", file=sys.stderr)
        return failed[1]


if __name__ == "__mp_main__":
    # a worker's middleman: horovod starts it with multiprocessing's spawn, which imports
    # this module again under this name before it runs the middleman, so the replacement
    # must be installed here too (it is where terminate_executor_shell_and_children runs)
    _install_terminate_tree()

if __name__ == "__main__":
    sys.exit(main())
