"""Finding the platform's processes from /proc, for the benchmarks that measure them."""

from __future__ import annotations

import os
from pathlib import Path


def processes(*needles: str) -> list[int]:
    """Processes whose command line contains every needle."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if all(n in cmd for n in needles):
                found.append(int(d.name))
    return found


def environ_of(pid: int) -> dict[str, str]:
    """The process's environment (raises OSError when it is gone or not ours)."""
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(e.decode(errors="replace").split("=", 1) for e in raw if b"=" in e)


def cpu_split(pid: int, thread: int | None = None) -> tuple[float, float]:
    """(user, system) CPU seconds a process (or one of its threads) has used so far."""
    stat = Path(f"/proc/{pid}/task/{thread}/stat" if thread else f"/proc/{pid}/stat")
    fields = stat.read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cpu_s(pid: int, thread: int | None = None) -> float:
    """User + system CPU seconds a process (or one of its threads) has used so far."""
    return sum(cpu_split(pid, thread))


def status_kb(pid: int, key: str = "VmRSS") -> int:
    """A size in KiB from /proc/<pid>/status (VmRSS, VmHWM...), 0 when the line is not there."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0
