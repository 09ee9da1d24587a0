"""Property tests: random small workloads through the real coordinator and
simulated backend, with invariants checked after every step."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flightbase_jobqueue.scheduling import Job, WorkspaceLimits, make_policy
from flightbase_jobqueue.sim.replay import make_nodes, simulate
from flightbase_jobqueue.states import JobState

POLICIES = ["fifo", "backfill", "fairshare", "las", "sjf"]


@st.composite
def workloads(draw):
    n_nodes = draw(st.integers(1, 3))
    per = draw(st.integers(1, 4))
    cap = n_nodes * per
    jobs = []
    for i in range(draw(st.integers(1, 14))):
        jobs.append(Job(
            id=f"j{i:02d}", workspace=draw(st.sampled_from("ab")),
            gpus=draw(st.integers(1, cap)), submitted_at=float(draw(st.integers(0, 40))),
            priority=draw(st.integers(0, 2)), preemptible=draw(st.booleans()),
            max_runtime=draw(st.none() | st.floats(1, 60))))
    jobs.sort(key=lambda j: (j.submitted_at, j.id))
    durations = {j.id: float(draw(st.integers(1, 60))) for j in jobs}
    limits = {}
    if draw(st.booleans()):
        qa = draw(st.integers(0, cap))
        borrow = draw(st.booleans())
        limits = {"a": WorkspaceLimits(quota=qa, allow_borrowing=borrow),
                  "b": WorkspaceLimits(quota=cap - qa, allow_borrowing=borrow)}
    return make_nodes(n_nodes, per), jobs, durations, limits


def check_invariants(sim, now):
    held = set()
    by_ws: dict[str, list] = {}
    for a in sim.store.active_jobs():
        assert sum(len(g) for g in a.placement.values()) == a.job.gpus
        for node, gpus in a.placement.items():
            for g in gpus:
                assert (node, g) not in held, f"GPU {node}:{g} double-booked at {now}"
                held.add((node, g))
        by_ws.setdefault(a.job.workspace, []).append(a.job)
    for ws, jobs in by_ws.items():
        lim = sim.store.limits.get(ws)
        if lim is None or lim.quota is None:
            continue
        total = sum(j.gpus for j in jobs)
        if not lim.allow_borrowing:
            assert total <= lim.quota
        # above the quota only by borrowing, and what is borrowed is reclaimable
        assert sum(j.gpus for j in jobs if not j.preemptible) <= lim.quota


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workloads(), st.sampled_from(POLICIES), st.sampled_from([0.0, 5.0]))
def test_no_double_booking_quotas_hold_and_every_job_finishes(workload, policy, grace):
    nodes, jobs, durations, limits = workload
    sim = simulate(jobs, durations, nodes, make_policy(policy, **({"min_run": 0.0} if policy == "las" else {})),
                   limits, restart_cost=1.0, grace_seconds=grace, observe=check_invariants,
                   max_steps=5000)
    rejected = {jid for jid, _ in sim.rejected}
    for j in jobs:
        if j.id in rejected:
            continue
        assert sim.store.state(j.id) is JobState.SUCCEEDED, (j, sim.store.state(j.id))
    assert sim.steps < 5000
