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

Run as ``python -m flightbase.quiet_horovodrun --gloo ...``
with horovodrun's own arguments (the jobqueue's ``backends/launchers.command``). It is
part of the client distribution because it runs where the job runs: a job's image
holds the client only.
"""

from __future__ import annotations

import os
import sys
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


def main() -> int | None:
    from horovod.runner import gloo_run, launch

    gloo_run._slot_info_to_command_fn = quiet(gloo_run._slot_info_to_command_fn, _is_local, dict(os.environ))
    sys.argv[0] = "horovodrun"
    return launch.run_commandline()


if __name__ == "__main__":
    sys.exit(main())
