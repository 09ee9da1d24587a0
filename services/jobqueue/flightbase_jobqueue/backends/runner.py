"""The first process of every local job: runs the job's command and records how it ended.

    python -m flightbase_jobqueue.backends.runner EXIT_FILE -- COMMAND...

It outlives a crash of the jobqueue service, so a restarted service learns the
exit code from EXIT_FILE (written atomically) even for a job that ended while
nobody watched. A termination signal is passed on to the command.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        sys.stderr.write("usage: runner EXIT_FILE -- COMMAND...\n")
        return 2
    exit_file, cmd = argv[0], argv[2:]
    try:
        proc = subprocess.Popen(cmd)
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
    tmp = exit_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(code))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, exit_file)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
