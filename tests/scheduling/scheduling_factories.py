"""Small factories for literal scheduling tables."""

from flightbase_jobqueue.scheduling import (ActiveJob, Job, Node, QueueView, Snapshot,
                                            WorkspaceLimits, make_policy)

RACK = "topology.flightbase.io/rack"


def job(id, gpus=1, ws="w", t=0.0, **kw):
    return Job(id=id, workspace=ws, gpus=gpus, submitted_at=t, **kw)


def node(name, total=8, free=None, rack=None, **kw):
    free = tuple(range(total)) if free is None else tuple(free)
    labels = {RACK: rack} if rack else {}
    return Node(name, total, free, labels, **kw)


def running(j, placement, started=0.0, stopping=False):
    return ActiveJob(j, {n: tuple(g) for n, g in placement.items()}, started, stopping)


def snap(queue=(), active=(), nodes=(), now=0.0, limits=None, **kw):
    return Snapshot(now=now, queue=QueueView.build(queue), active=tuple(active), nodes=tuple(nodes),
                    limits=limits or {}, **kw)


def quota(q, borrow=True, **kw):
    return WorkspaceLimits(quota=q, allow_borrowing=borrow, **kw)


def decide(policy, s, **opts):
    d = make_policy(policy, **opts).schedule(s)
    return ({a.job_id: dict(a.placement) for a in d.admits},
            [(p.job_id, p.for_job) for p in d.preempts], d)
