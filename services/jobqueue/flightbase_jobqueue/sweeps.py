"""Job queues (sweeps): a parameter grid or list expands into jobs run in a stated order.

Pure functions: expansion, the arguments each job gets, and which held jobs
may be released next. A sweep runs ``parallel`` jobs at a time (1: one after
another); the rest wait *held*, outside the scheduler's queue, and are
released in order as earlier ones end.
"""

from __future__ import annotations

import itertools
from typing import Any, Iterable, Mapping, Sequence

from flightbase.grid import Scalar, SweepError, parse_grid
from flightbase.grid import check_name as _check_name

MAX_JOBS = 1000


def grid_of(grid: str | Mapping[str, Sequence[Scalar]] | None) -> Mapping[str, Sequence[Scalar]] | None:
    """A grid sent as text (:mod:`flightbase.grid`'s grammar, as the CLI and the dialog send it)
    parsed; a mapping (the API's JSON form) as it is."""
    return parse_grid(grid) if isinstance(grid, str) else grid


def _check_value(value: Any, field: str) -> None:
    if not isinstance(value, (str, int, float, bool)):
        raise SweepError(field, f"parameter values must be numbers, strings or booleans, got {value!r}")


def expand(grid: Mapping[str, Sequence[Scalar]] | None = None,
           runs: Sequence[Mapping[str, Scalar]] | None = None) -> list[dict[str, Scalar]]:
    """The parameter sets, in order: a grid is the product in key order (last key fastest)."""
    if grid and runs:
        raise SweepError("sweep", "give either a grid or a list of runs, not both")
    if grid:
        for name, values in grid.items():
            _check_name(name, f"sweep.grid.{name}")
            if not isinstance(values, (list, tuple)) or not values:
                raise SweepError(f"sweep.grid.{name}", "must be a non-empty list of values")
            for v in values:
                _check_value(v, f"sweep.grid.{name}")
        count = 1
        for values in grid.values():
            count *= len(values)
        if count > MAX_JOBS:
            raise SweepError("sweep.grid", f"expands to {count} jobs; at most {MAX_JOBS} per sweep")
        names = list(grid)
        return [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]
    if runs:
        if len(runs) > MAX_JOBS:
            raise SweepError("sweep.runs", f"{len(runs)} runs; at most {MAX_JOBS} per sweep")
        out = []
        for i, run in enumerate(runs):
            if not isinstance(run, Mapping) or not run:
                raise SweepError(f"sweep.runs.{i}", "each run must be a non-empty mapping of parameters")
            for name, v in run.items():
                _check_name(name, f"sweep.runs.{i}")
                _check_value(v, f"sweep.runs.{i}.{name}")
            out.append(dict(run))
        return out
    return [{}]


def job_args(params: Mapping[str, Scalar]) -> list[str]:
    """The arguments a job of the sweep gets after the training's own: ``--name value``."""
    out: list[str] = []
    for name, value in params.items():
        out += [f"--{name}", str(value).lower() if isinstance(value, bool) else str(value)]
    return out


def job_name(training_name: str, index: int, params: Mapping[str, Scalar]) -> str:
    if not params:
        return training_name
    label = ",".join(f"{k}={v}" for k, v in params.items())
    return f"{training_name}[{index}:{label}]"[:160]


#: The states in which a sweep's released (not held) job takes one of its ``parallel`` places.
PLACE_STATES = ("queued", "starting", "running", "preempted")


def to_release(states: Iterable[tuple[int, str, bool]], parallel: int) -> list[int]:
    """Which held jobs to release: ``states`` are (seq, state, held) of a sweep's jobs.

    Jobs that are queued-and-released, starting, running or preempted occupy a
    slot; the lowest-numbered held queued jobs fill the free slots.
    """
    rows = sorted(states)
    busy = sum(1 for _, state, held in rows if state in PLACE_STATES and not held)
    free = max(0, parallel - busy)
    return [seq for seq, state, held in rows if held and state == "queued"][:free]
