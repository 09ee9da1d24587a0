"""The las policy keeps the queue in rank order from pass to pass (``LasPolicy._ranked``,
fed by ``QueueView.changes_since``; #17 part 6).  What it keeps must always be what a
fresh ranking of the queue gives, and a pass's decisions must not depend on what an
earlier pass left behind: checked here after random submissions, removals, priority
changes, requeues, bursts longer than the change log, and clocks that go back.  So is the
view's index of jobs by the time they were queued (``QueueView.queued_after``)."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from flightbase_jobqueue.scheduling import queueview
from flightbase_jobqueue.scheduling.policies.las import LasPolicy
from flightbase_jobqueue.scheduling.queueview import QueueView
from flightbase_jobqueue.scheduling.types import ActiveJob, Job, Node, Snapshot, WorkspaceLimits

OPTIONS = [
    {},
    {"starve_after": 30.0, "starve_factor": 2.0, "thresholds": (20.0, 200.0)},
    {"starve_after": 5.0, "preempt_after": 0.0, "min_run": 0.0},
    {"level_fn": lambda job, att: int(job.gpus > 2), "starve_after": 50.0},
]


def fresh(policy: LasPolicy, view: QueueView, now: float) -> list[tuple]:
    """The ranking as rank() and _starving_since() give it, with nothing kept."""
    return sorted(((policy.rank(j, now), policy._starving_since(j), j) for j in view.jobs()),
                  key=lambda e: e[0])


def mutate(rng: random.Random, view: QueueView, now: float, serial: list[int]) -> None:
    for _ in range(rng.choice([0, 1, 3, 10, 40])):
        r = rng.random()
        if r < 0.5 or not len(view):
            serial[0] += 1
            gpus = rng.choice([1, 1, 2, 4, 8])
            view.add(Job(id=f"j{serial[0]}", workspace=f"ws{rng.randrange(4)}", gpus=gpus,
                         priority=rng.choice([0, 0, 5]), submitted_at=now - rng.uniform(0, 100),
                         attained=rng.choice([0.0, 0.0, 10.0 * gpus, 150.0 * gpus, 1e6])))
        else:
            job = rng.choice(list(view.jobs()))
            view.remove(job.id)
            if r < 0.65:  # its priority changed (the store removes and adds it)
                view.add(replace(job, priority=job.priority + 1))
            elif r < 0.8:  # preempted and requeued later, with more service
                view.add(replace(job, enqueued_at=now, attained=job.attained + 40.0))


@pytest.mark.parametrize("opts", range(len(OPTIONS)))
def test_the_kept_ranking_is_always_a_fresh_ranking(opts, monkeypatch):
    monkeypatch.setattr(queueview, "CHANGE_LOG", 64)  # so bursts overflow the log
    rng = random.Random(opts)
    policy = LasPolicy(**OPTIONS[opts])
    view, now, serial = QueueView(), 1000.0, [0]
    for step in range(400):
        mutate(rng, view, now, serial)
        if rng.random() < 0.03:  # a burst longer than the change log: rebuilt from the queue
            for _ in range(100):
                mutate(rng, view, now, serial)
        if rng.random() < 0.05:
            now -= rng.uniform(0, 30)  # a clock that goes back: rebuilt too
        else:
            now += rng.choice([0.0, 0.2, 1.0, 7.0, 60.0])
        if rng.random() < 0.2:  # queue insight ranks a what-if copy: the kept one is untouched
            other = QueueView.build(j for j in view.jobs() if rng.random() < 0.7)
            assert policy._ranked(other, now, keep=False) == fresh(policy, other, now)
        got = policy._ranked(view, now)
        assert got == fresh(policy, view, now), step
        # the view's jobs by the time they were queued (a settled tail's wake-up reads them)
        t = now - rng.uniform(0, 100)
        since = {j.id: j.submitted_at if j.enqueued_at is None else j.enqueued_at for j in view.jobs()}
        assert list(view.queued_after(t)) == sorted((s, jid) for jid, s in since.items() if s > t), step
        # when the first of the jobs a pass left waiting starts starving (the pass's wake-up),
        # from the kept heap as from the whole queue
        waiting = {j.id for j in view.jobs() if rng.random() < 0.8}
        for bound in (float("inf"), now + 50.0):
            expected = min((since for _, since, j in fresh(policy, view, now)
                            if now < since < bound and j.id in waiting), default=bound)
            assert policy._next_starving(got, now, bound, waiting) == expected, step


def snapshot(rng: random.Random, view: QueueView, now: float) -> Snapshot:
    nodes = [Node("a", 8, ()), Node("b", 8, ())]
    active, used = [], {"a": 0, "b": 0}
    for i in range(rng.randrange(0, 5)):
        node = rng.choice("ab")
        g = rng.choice([1, 2, 4])
        if used[node] + g <= 8:
            active.append(ActiveJob(Job(id=f"run{i}", workspace=f"ws{i % 4}", gpus=g, submitted_at=now - 500,
                                        attained=rng.choice([0.0, 300.0])),
                                    {node: tuple(range(used[node], used[node] + g))}, now - rng.uniform(0, 400)))
            used[node] += g
    limits = ({f"ws{w}": WorkspaceLimits(quota=4, borrowing_limit=rng.choice([None, 0, 4])) for w in range(4)}
              if rng.random() < 0.5 else {})
    return Snapshot(now=now, queue=view, active=active, nodes=nodes, limits=limits)


@pytest.mark.parametrize("opts", range(len(OPTIONS)))
def test_a_pass_decides_the_same_with_or_without_what_earlier_passes_kept(opts):
    rng = random.Random(100 + opts)
    kept = LasPolicy(**OPTIONS[opts])
    view, now, serial = QueueView(), 1000.0, [0]
    for _ in range(150):
        mutate(rng, view, now, serial)
        now += rng.choice([0.0, 1.0, 10.0, 40.0])
        snap = snapshot(rng, view, now)
        a, b = kept.schedule(snap), LasPolicy(**OPTIONS[opts]).schedule(snap)
        assert (a.admits, a.preempts, dict(a.waiting), a.wake_at) == (b.admits, b.preempts, dict(b.waiting), b.wake_at)


def test_a_pass_ranks_only_the_jobs_that_changed(monkeypatch):
    """Counted in jobs ranked, not time: a pass that ranked the whole queue (as it once
    did) ranks 5,000 per pass here, 25,000 over five."""
    rng = random.Random(7)
    view, now, serial = QueueView(), 1000.0, [0]
    for _ in range(5000):
        serial[0] += 1
        view.add(Job(id=f"j{serial[0]}", workspace=f"ws{serial[0] % 4}", gpus=1, submitted_at=now))
    snap = lambda: Snapshot(now=now, queue=view, active=[ActiveJob(Job(id="r", workspace="ws0", gpus=8),
                                                                 {"a": tuple(range(8))}, now)],
                            nodes=[Node("a", 8, ())], limits={})
    policy = LasPolicy()
    ranked = [0]
    real = LasPolicy._entry

    def entry(self, job, at, store=True):
        ranked[0] += 1
        return real(self, job, at, store)

    monkeypatch.setattr(LasPolicy, "_entry", entry)
    policy.schedule(snap())
    assert ranked[0] == 5000  # the first pass ranks them all
    ranked[0] = 0
    for _ in range(5):
        now += 0.5
        for _ in range(10):  # ten come, ten go
            serial[0] += 1
            view.add(Job(id=f"j{serial[0]}", workspace="ws1", gpus=1, submitted_at=now))
            view.remove(rng.choice(list(view.jobs())).id)
        dec = policy.schedule(snap())
        assert not dec.admits and not dec.preempts and len(view) == 5000
    # the jobs added (50), and those of them removed again, cost a ranking each; nobody starved
    assert ranked[0] <= 50, ranked[0]
