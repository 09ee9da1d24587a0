"""Random trace CSVs for the simulator's replay tests (the format ``flightbase_jobqueue.sim.trace`` reads)."""

from __future__ import annotations

import random
from pathlib import Path

HEADER = "job_id,submit_time,num_gpus,duration,group,user,queue_delay,status\n"


def write_random_trace(path: Path, *, seed: int, jobs: int, max_gap: int, gpus: list[int],
                       lognormal: tuple[float, float], groups: list[str]) -> str:
    """Write ``jobs`` jobs to ``path`` and return it as a string, for ``replay``.

    Each job comes 0 to ``max_gap`` seconds after the one before it, asks for a GPU count drawn
    from ``gpus`` (repeat a value to weight it), runs a lognormal(``lognormal``) number of
    seconds (at least 1) and belongs to one of ``groups``. The draws are made in that order from
    ``random.Random(seed)``, so a seed always gives the same trace.
    """
    rng = random.Random(seed)
    rows, t = [], 0
    for i in range(jobs):
        t += rng.randint(0, max_gap)
        rows.append(f"j{i},{t},{rng.choice(gpus)},{int(rng.lognormvariate(*lognormal)) + 1},"
                    f"{rng.choice(groups)},,,\n")
    path.write_text(HEADER + "".join(rows))
    return str(path)
