"""Scale of the live service: Kueue's baseline performance test against the running jobqueue (#17 part 6).

The workload is Kueue's own baseline, from kubernetes-sigs/kueue
``test/performance/scheduler/configs/baseline/generator.yaml`` (its figures in
``configs/baseline/rangespec.yaml``: 351 s wall, 0.40 CPU, 445 MB): 5 cohorts x 6
ClusterQueues = 30 queues, each with ``nominalQuota: 20`` and ``borrowingLimit: 100``,
and in each queue

- 350 ``small`` workloads (1 unit, 200 ms, priority 50), one every 100 ms;
- 100 ``medium`` workloads (5 units, 500 ms, priority 100), one every 500 ms;
- 50 ``large`` workloads (20 units, 1000 ms, priority 200), one every 1200 ms;

15,000 in all. Here a queue is a workspace (``gpu_quota`` 20, ``borrowing_limit``
100), a unit a CPU slot of the platform (30 x 20 = 600 slots on one node: Kueue's
cohorts each pool their 6 queues' 120 units, ours is one pool of 600; a workspace
may hold at most 120 either way), a workload one training of one job, submitted
through the hub's proxy at Kueue's pace, with Kueue's priorities halved (our range
is -100..100). The jobs run on the jobqueue's simulated backend (``FLIGHTBASE_BACKEND=sim``,
``backends/simulated.py``): no process, each ends after its ``SIM_SECONDS`` divided
by ``--speed``; every start and end is fsync'd to ``<data_dir>/sim/runs.log``.

    .venv/bin/python benchmarks/scale_bench.py                      # the full run: 15,000 workloads, 30 workspaces
    .venv/bin/python benchmarks/scale_bench.py --workloads 300 --workspaces 6 --kills 1 --json

It starts a real platform (``flightbase up`` through tests/platform/harness.py, as
submit_bench.py does) and measures:

- **drain time**: first submission to the last workload's end (Kueue's 351 s is its
  runner's whole wall time, about the same span);
- the jobqueue's **CPU** (user + system seconds from /proc, every incarnation,
  divided by the drain time: cores; also user and system apart, and its event loop's
  thread apart) and its **peak RSS** (VmHWM, the largest of any incarnation) and the
  proxy's CPU;
- **API p99 latency while loaded**: ``GET /queue?workspace=..`` and ``GET /jobs/{id}``
  of a random accepted job, twice a second each, from first submission to drain,
  through the proxy, from a process of their own (in the bench's, their answers would
  wait for its event loop, busy with the submissions). Requests that fail while the
  jobqueue is down after a kill are counted apart, not in the percentiles. Also the
  submissions' own latency, and the bench's own CPU (``bench_cpu_cores``: near 1, the
  bench would be setting the pace, not the platform);
- **nothing lost, nothing run twice**, with the jobqueue SIGKILLed ``--kills`` times
  during the drain (when 25% and 60% of the workloads have ended; the hub starts it
  again). From the sim backend's run log (:func:`~flightbase_jobqueue.backends.simulated.audit`),
  for every training in the jobqueue's database (every 201 the bench got, plus any
  committed whose answer a kill cut off):

  - *ran exactly once*: exactly one ``end`` record (ran to completion once) and no
    ``start`` while one of its runs was open. A run under way when the jobqueue is
    killed is one ``start`` and, after the restart re-attaches it, one ``end``: it
    counts once. A run stopped by the scheduler (preemption) is a ``stop`` record;
    its restart is a new run, and only the one that ends counts as the completion;
  - *lost*: no ``end`` record, or its job not SUCCEEDED in the database;
  - *run twice*: two ``end`` records or overlapping runs.

  A submission that fails (the jobqueue is down) is retried with the same body and the
  same ``Idempotency-Key``, as ``flightbase.Client.submit`` does, so a retry whose first
  answer a kill cut off gets the training already committed (200). A name that appears
  twice in the database is reported (``duplicate_submissions``: it should be 0).

Exit status 0 when every workload ran exactly once and nothing was lost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform as host
import queue
import random
import resource
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "services" / "jobqueue")]
from tests.platform.harness import new_platform  # noqa: E402  (the launcher the tests use)
from flightbase_jobqueue.backends.simulated import audit as audit_runs, log_path  # noqa: E402
from benchmarks._proc import cpu_s, cpu_split, processes, status_kb  # noqa: E402
from benchmarks.submit_bench import scheduler_passes  # noqa: E402

CODE = b"print('simulated: never runs')\n"
POOL_CONNECTIONS = 5  # connections per httpx pool of the submissions (run_load)


@dataclass(frozen=True)
class WorkloadClass:
    name: str
    share: float        # of each workspace's workloads (350/500, 100/500, 50/500)
    interval_s: float   # creationIntervalMs
    gpus: int           # request
    seconds: float      # runtimeMs
    priority: int       # Kueue's priority / 2


KUEUE_BASELINE = (
    WorkloadClass("small", 0.7, 0.1, 1, 0.2, 25),
    WorkloadClass("medium", 0.2, 0.5, 5, 0.5, 50),
    WorkloadClass("large", 0.1, 1.2, 20, 1.0, 100),
)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q * len(s) + 0.5)) - 1))]


def ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 1)


# -- /proc ---------------------------------------------------------------------
def proxy_pids(port: int) -> list[int]:
    return processes("configurable-http-proxy", f"--port {port}")


class JobqueueMeter:
    """CPU seconds and peak RSS of the jobqueue across its incarnations (a kill starts a new one).

    The CPU is also split into user and system time, and the event loop's thread (the
    process's main thread, whose id is the pid: requests, scheduler passes and projections
    run there) is measured apart from the others (the thread pool's, the writers', the
    backend's)."""

    def __init__(self, platform):
        self.p = platform
        # pid -> last (user, system, loop thread) CPU seconds seen, and those when measuring began
        self.cpu: dict[int, tuple[float, float, float]] = {}
        self.base: dict[int, tuple[float, float, float]] = {}
        self.hwm_kb = 0
        self.rss_samples: list[int] = []
        self.started = time.monotonic()
        self.rss_top = (0, 0.0)  # the largest VmRSS sampled, and when (s after the first sample)

    def pid(self) -> int | None:
        try:
            return self.p.service_pid("jobqueue")
        except AssertionError:
            return None

    def sample(self) -> None:
        pid = self.pid()
        if pid is None:
            return
        try:
            c = (*cpu_split(pid), cpu_s(pid, pid))
            self.base.setdefault(pid, (0.0, 0.0, 0.0) if self.cpu else c)  # a new incarnation counts from its start
            self.cpu[pid] = c
            self.hwm_kb = max(self.hwm_kb, status_kb(pid, "VmHWM"))
            rss = status_kb(pid, "VmRSS")
            self.rss_samples.append(rss)
            if rss > self.rss_top[0]:
                self.rss_top = (rss, time.monotonic() - self.started)
        except (OSError, IndexError, ValueError):
            pass

    def cpu_seconds(self, part: int | None = None) -> float:
        """All of it; or one ``part``: 0 user, 1 system, 2 the event loop's thread."""
        parts = (0, 1) if part is None else (part,)
        return sum(self.cpu[p][i] - self.base[p][i] for p in self.cpu for i in parts)


# -- the run log, followed -------------------------------------------------------
class RunLog:
    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self.ended: dict[str, float] = {}
        self.first_start: dict[str, float] = {}
        self._tail = b""

    def read(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return
        self.offset += len(data)
        data = self._tail + data
        lines = data.split(b"\n")
        self._tail = lines.pop()
        for line in lines:
            parts = line.split()
            if len(parts) >= 4 and parts[0] == b"end":
                self.ended.setdefault(parts[1].decode(), float(parts[3]))
            elif len(parts) >= 4 and parts[0] == b"start":
                self.first_start.setdefault(parts[1].decode(), float(parts[3]))


# -- the run -----------------------------------------------------------------------
def setup(p, workspaces: int, quota: int, borrowing_limit: int | None) -> tuple[str, dict[str, str]]:
    admin = p.admin_token
    token = p.create_user("scaler")
    codes = {}
    settings = {"gpu_quota": quota, **({"borrowing_limit": borrowing_limit} if borrowing_limit is not None else {})}
    for i in range(workspaces):
        ws = f"cq-{i:02d}"
        r = p.api("jobqueue", "POST", "workspaces", admin, json={"name": ws, "settings": settings})
        assert r.status_code == 201, r.text
        assert p.api("jobqueue", "PUT", f"workspaces/{ws}/members/scaler", admin).status_code == 200
    for i in range(workspaces):  # after every membership: the services cache what a token may reach
        ws = f"cq-{i:02d}"
        up = p.api("jobqueue", "POST", "code", token, params={"workspace": ws, "filename": "job.py"}, content=CODE)
        assert up.status_code == 201, up.text
        codes[ws] = up.json()["id"]
    return token, codes


def schedule(workloads: int, workspaces: int) -> list[tuple[float, str, WorkloadClass, int]]:
    """(offset from the start, workspace, class, index): each workspace's sets, each at its interval."""
    per_ws = workloads // workspaces
    out = []
    for w in range(workspaces):
        counts = [int(per_ws * c.share) for c in KUEUE_BASELINE]
        counts[0] += per_ws - sum(counts)
        for c, n in zip(KUEUE_BASELINE, counts):
            out += [(i * c.interval_s, f"cq-{w:02d}", c, i) for i in range(n)]
    out.sort(key=lambda x: x[0])
    return out


def probe_main(base_url: str, token: str, workspaces: list[str], ids, stop, out) -> None:
    """The latency probes, in a process of their own (``run_load``): ``GET /queue?workspace=..`` of a
    random workspace and ``GET /jobs/{id}`` of a random accepted job (their ids come on ``ids``),
    in turn, 0.25 s apart, until ``stop``; then (latencies, failures) on ``out``. A request that
    fails (the jobqueue is down after a kill) is counted apart, not in the latencies."""
    out.put(asyncio.run(_probe(base_url, token, workspaces, ids, stop)))


async def _probe(base_url: str, token: str, workspaces: list[str], ids, stop) -> tuple[dict, dict]:
    lat: dict[str, list[float]] = {"queue": [], "job": []}
    down = {"queue": 0, "job": 0}
    known: list[str] = []
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"token {token}"}, timeout=60) as probe:
        i = 0
        while not stop.is_set():
            try:
                while True:
                    known.append(ids.get_nowait())
            except queue.Empty:
                pass
            i += 1
            kind = "queue" if i % 2 else "job"
            if kind == "queue":
                path, params = "/queue", {"workspace": random.choice(workspaces)}
            elif known:
                path, params = f"/jobs/{random.choice(known)}", None
            else:
                await asyncio.sleep(0.25)
                continue
            t0 = time.perf_counter()
            try:
                r = await probe.get(path, params=params)
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                lat[kind].append(time.perf_counter() - t0)
            else:
                down[kind] += 1
            await asyncio.sleep(0.25)
    return lat, down


async def run_load(p, token: str, codes: dict[str, str], plan, meter: JobqueueMeter, runlog: RunLog,
                   kills_at: list[float], clients: int) -> dict:
    url = p.url
    headers = {"Authorization": f"token {token}"}
    accepted: dict[str, tuple[str, float, str]] = {}   # job id -> (class, submitted at, workspace)
    sub_lat: list[float] = []
    failures = {"retried": 0, "rejected": 0}
    kills: list[dict] = []
    began = time.time()
    total = len(plan)

    # Submissions go through small connection pools, POOL_CONNECTIONS each: httpcore matches
    # every waiting request against every connection of its pool at each change, and one
    # pool of 50 kept the bench's own event loop busy (the pace of the submissions was the
    # bench's, not the platform's); a slot is one pool's connection, ``clients`` in all.
    pools = -(-clients // POOL_CONNECTIONS)
    limits = httpx.Limits(max_connections=POOL_CONNECTIONS, max_keepalive_connections=POOL_CONNECTIONS)
    base_url = f"{url}/services/jobqueue/api/v1"
    # the probes run in a process of their own: in this one, their answers would wait for this
    # event loop, busy with the submissions, and their latency would be partly the bench's own
    mp = multiprocessing.get_context("spawn")
    probe_ids, probe_stop, probe_out = mp.Queue(), mp.Event(), mp.Queue()
    prober = mp.Process(target=probe_main, args=(base_url, token, sorted(codes), probe_ids, probe_stop, probe_out),
                        name="scale-bench-probes", daemon=True)
    prober.start()
    async with contextlib.AsyncExitStack() as stack:
        http = [await stack.enter_async_context(httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60,
                                                                 limits=limits)) for _ in range(pools)]
        slots: asyncio.Queue[int] = asyncio.Queue()
        for n in range(clients):
            slots.put_nowait(n % pools)

        async def submit(at: float, ws: str, c: WorkloadClass, i: int) -> None:
            delay = began + at - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            body = {"workspace": ws, "name": f"{c.name}-{i}", "entrypoint": "job.py", "code_id": codes[ws],
                    "gpus": c.gpus, "priority": c.priority, "env": {"SIM_SECONDS": str(c.seconds)}}
            key = {"Idempotency-Key": f"{ws}-{c.name}-{i}"}  # one per workload, the same on every retry
            while True:
                pool = await slots.get()
                try:
                    t0 = time.perf_counter()
                    try:
                        r = await http[pool].post("/trainings", json=body, headers=key)
                    except httpx.HTTPError:
                        r = None
                    dt = time.perf_counter() - t0
                finally:
                    slots.put_nowait(pool)
                if r is not None and r.status_code in (200, 201):  # 200: a retry found its training
                    sub_lat.append(dt)
                    job_id = r.json()["jobs"][0]["id"]
                    accepted[job_id] = (c.name, time.time() - dt, ws)
                    probe_ids.put(job_id)
                    return
                if r is not None and r.status_code < 500:
                    failures["rejected"] += 1
                    print(f"rejected {r.status_code}: {r.text[:200]}", file=sys.stderr)
                    return
                failures["retried"] += 1  # the jobqueue is down (a kill): the same workload again
                await asyncio.sleep(0.5)

        async def watcher() -> None:
            pending_kills = list(kills_at)
            while True:
                meter.sample()
                runlog.read()
                finished = sum(1 for j in accepted if j in runlog.ended)
                submitted_all = len(accepted) + failures["rejected"] >= total
                if pending_kills and finished >= pending_kills[0] * total:
                    pending_kills.pop(0)
                    kills.append(await asyncio.to_thread(kill_and_wait, p, meter, finished))
                    continue
                if submitted_all and finished >= len(accepted):
                    return
                await asyncio.sleep(0.5)

        watch_task = asyncio.create_task(watcher())
        await asyncio.gather(*(submit(*x) for x in plan))
        submitted_in = time.time() - began
        await watch_task
    probe_stop.set()
    probe_lat, probe_down = await asyncio.to_thread(probe_out.get, timeout=120)
    prober.join(30)
    last_end = max((runlog.ended[j] for j in accepted), default=began)
    waits: dict[str, list[float]] = {}
    for j, (cls, at, _) in accepted.items():
        if j in runlog.first_start:
            waits.setdefault(cls, []).append(max(0.0, runlog.first_start[j] - at))
    return {
        "began": began,
        "drain_seconds": round(last_end - began, 1),
        "submission_seconds": round(submitted_in, 1),
        "accepted": len(accepted),
        "submissions_retried": failures["retried"],
        "submissions_rejected": failures["rejected"],
        "submit_latency_ms_p50": ms(percentile(sub_lat, 0.5)),
        "submit_latency_ms_p99": ms(percentile(sub_lat, 0.99)),
        "api_queue_ms_p50": ms(percentile(probe_lat["queue"], 0.5)),
        "api_queue_ms_p99": ms(percentile(probe_lat["queue"], 0.99)),
        "api_job_ms_p50": ms(percentile(probe_lat["job"], 0.5)),
        "api_job_ms_p99": ms(percentile(probe_lat["job"], 0.99)),
        "api_requests": {k: len(v) for k, v in probe_lat.items()},
        "api_failed_while_down": probe_down,
        "admission_wait_s_mean": {k: round(statistics.fmean(v), 2) for k, v in sorted(waits.items())},
        "kills": kills,
        "job_ids": list(accepted),
    }


def kill_and_wait(p, meter: JobqueueMeter, finished: int) -> dict:
    """SIGKILL the jobqueue; the hub starts it again; until it answers."""
    pid = p.service_pid("jobqueue")
    meter.sample()
    t0 = time.time()
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 120
    while True:
        new = meter.pid()
        if new is not None and new != pid:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"the jobqueue was not started again:\n{p.log_tail()}")
        time.sleep(0.2)
    p.wait_healthy(timeout=120)
    meter.sample()
    return {"at_finished": finished, "pid": pid, "new_pid": new, "down_seconds": round(time.time() - t0, 1)}


def audit_db(data_dir: Path) -> dict:
    db = sqlite3.connect(f"file:{data_dir / 'jobqueue.sqlite'}?mode=ro", uri=True)
    rows = db.execute("select j.id, j.state, t.workspace, t.name from jobs j join trainings t on t.id = j.training_id "
                      "where t.workspace like 'cq-%'").fetchall()
    names = [(ws, name) for _, _, ws, name in rows]
    return {
        "jobs_in_db": len(rows),
        "job_ids": [r[0] for r in rows],
        "not_succeeded": sum(1 for r in rows if r[1] != "succeeded"),
        "not_succeeded_examples": [(r[0], r[1]) for r in rows if r[1] != "succeeded"][:5],
        "duplicate_submissions": len(names) - len(set(names)),
    }


def settled_db(data_dir: Path, timeout: float = 60.0) -> tuple[dict, float]:
    """:func:`audit_db` once the store has caught up with the run log.

    The drain ends when the run log shows every run ended, and the backend writes
    an end there *before* the coordinator hears of it (module docstring of
    ``backends/simulated.py``), so the last few jobs can still be ``running`` in the
    store for a moment (longer on a loaded machine). Read again until none is left
    that is not succeeded, or ``timeout`` seconds; returns the audit and the seconds
    it took."""
    t0 = time.monotonic()
    while True:
        db = audit_db(data_dir)
        if db["not_succeeded"] == 0 or time.monotonic() - t0 > timeout:
            return db, round(time.monotonic() - t0, 2)
        time.sleep(0.2)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", type=int, default=15000, help="in all (Kueue's baseline: 15,000)")
    ap.add_argument("--workspaces", type=int, default=30, help="Kueue's ClusterQueues (30)")
    ap.add_argument("--quota", type=int, default=20, help="each workspace's gpu_quota (nominalQuota: 20)")
    ap.add_argument("--borrowing-limit", type=int, default=100, help="each workspace's borrowing_limit (100)")
    ap.add_argument("--speed", type=float, default=1.0, help="sim_speed: jobs run this much faster than declared")
    ap.add_argument("--kills", type=int, default=2, choices=range(0, 3), help="SIGKILLs of the jobqueue (0-2)")
    ap.add_argument("--clients", type=int, default=50, help="concurrent submissions at most")
    ap.add_argument("--policy", default=None, help="the scheduler's policy (default: the platform's)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    if args.workloads < args.workspaces or args.workspaces < 1:
        ap.error("--workloads must be at least --workspaces, which must be at least 1")

    slots = args.workspaces * args.quota
    p = new_platform(Path(tempfile.mkdtemp()), gpus=str(slots), policy=args.policy, extra_env={
        "FLIGHTBASE_BACKEND": "sim", "FLIGHTBASE_SIM_SPEED": str(args.speed),
        "FLIGHTBASE_AUTH_CACHE_SECONDS": "30"})  # production caching of token lookups (the tests turn it off)
    p.start(timeout=120)
    try:
        token, codes = setup(p, args.workspaces, args.quota, args.borrowing_limit)
        meter = JobqueueMeter(p)
        meter.sample()
        proxy = proxy_pids(p.port)
        proxy_before = sum(cpu_s(x) for x in proxy)
        runlog = RunLog(log_path(p.data_dir))
        plan = schedule(args.workloads, args.workspaces)
        kills_at = [0.25, 0.6][:args.kills]
        own_before = resource.getrusage(resource.RUSAGE_SELF)
        measured = asyncio.run(run_load(p, token, codes, plan, meter, runlog, kills_at, args.clients))
        own = resource.getrusage(resource.RUSAGE_SELF)
        meter.sample()
        proxy_cpu = sum(cpu_s(x) for x in proxy) - proxy_before
        passes = scheduler_passes(p, p.admin_token)  # since the last restart (a kill resets the counters)
        db, settle_s = settled_db(p.data_dir)
        runs = audit_runs(log_path(p.data_dir), db["job_ids"])
        accepted_missing = len(set(measured["job_ids"]) - set(db["job_ids"]))
        drain = max(measured["drain_seconds"], 1e-9)
        result = {
            "workloads": len(plan),
            "workspaces": args.workspaces,
            "quota": args.quota,
            "borrowing_limit": args.borrowing_limit,
            "slots": slots,
            "speed": args.speed,
            "policy": args.policy or "platform default",
            **{k: v for k, v in measured.items() if k not in ("job_ids", "began")},
            "jobqueue_cpu_seconds": round(meter.cpu_seconds(), 1),
            "jobqueue_cpu_cores": round(meter.cpu_seconds() / drain, 3),
            "jobqueue_cpu_user_seconds": round(meter.cpu_seconds(0), 1),
            "jobqueue_cpu_system_seconds": round(meter.cpu_seconds(1), 1),
            "jobqueue_cpu_loop_thread_seconds": round(meter.cpu_seconds(2), 1),
            "jobqueue_peak_rss_mb": round(meter.hwm_kb / 1024, 1),
            "jobqueue_rss_mb_median": (round(statistics.median(meter.rss_samples) / 1024, 1)
                                       if meter.rss_samples else None),
            # the largest RSS sampled and when: a peak (VmHWM) well above it lasted less than
            # the time between two samples
            "jobqueue_rss_mb_top_sample": round(meter.rss_top[0] / 1024, 1),
            "jobqueue_rss_top_sample_at_s": round(meter.rss_top[1], 1),
            "proxy_cpu_cores": round(proxy_cpu / drain, 3),
            # the bench's own process (its submissions and bookkeeping, not the probes' process):
            # near 1, its event loop is what paces the submissions, not the platform
            "bench_cpu_cores": round((own.ru_utime + own.ru_stime - own_before.ru_utime - own_before.ru_stime) / drain, 3),
            "scheduler_since_last_restart": passes,
            "accepted_not_in_db": accepted_missing,
            "jobs_in_db": db["jobs_in_db"],
            "jobs_not_succeeded": db["not_succeeded"],
            "store_caught_up_seconds": settle_s,
            "jobs_not_succeeded_examples": db["not_succeeded_examples"],
            "duplicate_submissions": db["duplicate_submissions"],
            "ran_exactly_once": runs["completed_once"],
            "lost": runs["lost"] + accepted_missing,
            "run_twice": runs["run_twice"],
            "still_running": runs["still_running"],
            "preempted_runs": runs["stopped_runs"],
            "run_log_examples": runs["examples"],
            "load_average_1min": round(os.getloadavg()[0], 2),
            "machine": f"{host.machine()}, {os.cpu_count()} cores, Python {host.python_version()}",
            "kueue": {"drain_seconds": 351, "cpu_cores": 0.40, "memory_mb": 445},
        }
    finally:
        p.remove()
    ok = (result["lost"] == 0 and result["run_twice"] == 0 and result["jobs_not_succeeded"] == 0
          and result["ran_exactly_once"] == result["jobs_in_db"] and result["accepted"] + result["submissions_rejected"]
          == result["workloads"] and result["submissions_rejected"] == 0)
    result["ok"] = ok
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
