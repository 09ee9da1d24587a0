"""The first process of every local job: runs the job's command and records how it ended.

    python -m flightbase_jobqueue.backends.runner --exit-fd N -- COMMAND...

It runs as the job's owner and outlives a crash of the jobqueue service, so a
restarted service learns the exit code even for a job that ended while nobody
watched. It writes the code into descriptor N, which the platform opened on
the job's ``exit_code`` file in a folder the job cannot change (the job's own
processes do not inherit it), so no path the job controls is ever written or
read back by the platform. A termination signal is passed on to the command.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[0] != "--exit-fd" or not argv[1].isdigit() or argv[2] != "--":
        sys.stderr.write("usage: runner --exit-fd N -- COMMAND...\n")
        return 2
    exit_fd, cmd = int(argv[1]), argv[3:]
    try:
        proc = subprocess.Popen(cmd)  # close_fds: the command does not get exit_fd
    except OSError as exc:
        sys.stderr.write(f"flightbase: cannot start {cmd[0]!r}: {exc.strerror}\n")
        code = 127
    else:
        def forward(signum, _frame):
            try:
                proc.send_signal(signum)
            except ProcessLookupError:
                pass

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        code = proc.wait()
        if code < 0:  # killed by a signal: report it the way shells do
            code = 128 - code
    os.ftruncate(exit_fd, 0)
    os.pwrite(exit_fd, str(code).encode(), 0)
    os.fsync(exit_fd)
    os.close(exit_fd)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
