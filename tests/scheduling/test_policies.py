"""Table tests of one scheduling pass: literal snapshot in, literal decisions out."""

import pytest

from flightbase_jobqueue.scheduling import DeclaredOrDefault, UnknownPolicy, lease, make_policy

from scheduling_factories import decide, job, node, quota, running, snap

ALL = ["fifo", "backfill", "fairshare", "las", "sjf"]


@pytest.mark.parametrize("policy", ALL)
def test_gang_all_or_nothing(policy):
    admits, _, d = decide(policy, snap([job("big", 6)], nodes=[node("a", free=[0, 1, 2, 3]),
                                                              node("b", free=[0, 1, 2, 3])]))
    assert admits == {}
    assert d.waiting["big"].startswith("needs 6 GPUs on one node; 8 GPUs free")


def test_fifo_shortage_blocks_what_is_behind():
    s = snap([job("a", 1, t=0), job("b", 8, t=1), job("c", 1, t=2)], nodes=[node("n", free=[0, 1, 2])])
    admits, _, d = decide("fifo", s)
    assert admits == {"a": {"n": (0,)}}
    assert list(d.waiting) == ["b"]


def test_priority_reorders_only_within_a_workspace():
    s = snap([job("w1", 1, ws="w", t=0), job("v1", 1, ws="v", t=1), job("w2", 1, ws="w", t=2, priority=5)],
             nodes=[node("n", free=[0, 1])])
    admits, _, _ = decide("fifo", s)
    # w2 takes w's first slot (t=0); v1 keeps its place before w's second slot.
    assert list(admits) == ["w2", "v1"]


def test_quota_blocks_only_its_workspace():
    s = snap([job("a", 4, ws="t", t=0), job("b", 2, ws="u", t=1), job("c", 1, ws="t", t=2)],
             nodes=[node("n", free=range(6))], active=[running(job("r", 2, ws="t"), {"n": [6, 7]})],
             limits={"t": quota(4, borrow=False)})
    admits, _, d = decide("fifo", s)
    assert admits == {"b": {"n": (0, 1)}}
    assert d.waiting == {"a": "workspace quota 2/4 in use (borrowing is off)"}


def test_borrowing_then_reclaim():
    # t borrows idle GPUs above its quota of 2; when u (quota 6) needs its
    # share, t's newest borrowed job is preempted.
    active = [running(job("t1", 2, ws="t"), {"n": [0, 1]}, started=0),
              running(job("t2", 4, ws="t"), {"n": [2, 3, 4, 5]}, started=10),
              running(job("t3", 2, ws="t", preemptible=False), {"n": [6, 7]}, started=20)]
    limits = {"t": quota(4), "u": quota(4)}
    admits, preempts, d = decide("fifo", snap([job("u1", 4, ws="u", t=30)], active, [node("n", free=[])],
                                              now=40, limits=limits))
    assert admits == {}
    assert preempts == [("t2", "u1")]
    assert d.waiting["u1"].startswith("needs 4 GPUs on one node; within quota, waiting for 1")


def test_reclaim_is_not_repeated_while_the_victim_stops():
    active = [running(job("t2", 4, ws="t"), {"n": [0, 1, 2, 3]}, stopping=True),
              running(job("t1", 4, ws="t"), {"n": [4, 5, 6, 7]})]
    limits = {"t": quota(2), "u": quota(6)}
    admits, preempts, _ = decide("fifo", snap([job("u1", 4, ws="u")], active, [node("n", free=[])],
                                              limits=limits))
    assert (admits, preempts) == ({}, [])


def test_non_preemptible_does_not_borrow():
    limits = {"t": quota(1)}
    admits, _, d = decide("fifo", snap([lease("nb", "t")], [running(job("x", 1, ws="t"), {"n": [0]})],
                                       [node("n", free=range(1, 8))], limits=limits))
    assert admits == {}
    assert d.waiting["nb"] == "workspace quota 1/1 in use (a non-preemptible job does not borrow)"


def test_backfill_respects_the_head_reservation():
    # n has 2 free GPUs; the head (8 GPUs) can start at 1000 when r ends.
    active = [running(job("r", 6, max_runtime=1000), {"n": range(6)})]
    queue = [job("head", 8, t=0), job("short", 2, t=1, max_runtime=500),
             job("long", 2, t=2, max_runtime=5000)]
    s = snap(queue, active, [node("n", free=[6, 7])], now=0)
    admits, _, d = decide("backfill", s)
    assert admits == {"short": {"n": (6, 7)}}
    assert "reserved, estimated start 00:16 when training r ends" in d.waiting["head"]
    # without the short job the long one may not take the head's GPUs
    admits, _, d = decide("backfill", snap([queue[0], queue[2]], active, [node("n", free=[6, 7])]))
    assert admits == {}
    assert "may not delay head" in d.waiting["long"]


def test_backfill_uses_gpus_the_reservation_does_not_need():
    active = [running(job("r", 8, max_runtime=1000), {"a": range(8)})]
    queue = [job("head", 8, t=0), job("long", 2, t=1, max_runtime=9999)]
    admits, _, _ = decide("backfill", snap(queue, active, [node("a", free=[]), node("b", free=[0, 1])]))
    assert admits == {"long": {"b": (0, 1)}}


def test_fairshare_serves_the_least_used_workspace_first():
    queue = [job("h1", 4, ws="heavy", t=0), job("l1", 4, ws="light", t=1), job("h2", 4, ws="heavy", t=2)]
    admits, _, _ = decide("fairshare", snap(queue, nodes=[node("n")], usage={"heavy": 1e6, "light": 0.0}))
    assert list(admits) == ["l1", "h1"]


def test_fairshare_under_quota_first():
    queue = [job("a1", 4, ws="a", t=0), job("b1", 4, ws="b", t=1)]
    limits = {"a": quota(0), "b": quota(4)}
    admits, _, _ = decide("fairshare", snap(queue, nodes=[node("n", free=range(4))], limits=limits,
                                            usage={"b": 1e9}))
    assert list(admits) == ["b1"]


def test_las_preempts_a_lower_level_job():
    old = running(job("old", 8, ws="v", attained=100_000.0), {"n": range(8)}, started=0)
    admits, preempts, d = decide("las", snap([job("new", 2, t=500)], [old], [node("n", free=[])], now=1000),
                                 thresholds=(3600.0,), min_run=0.0)
    assert (admits, preempts) == ({}, [("old", "new")])
    # same level: no preemption (no thrashing)
    young = running(job("young", 8, ws="v"), {"n": range(8)}, started=900)
    admits, preempts, _ = decide("las", snap([job("new", 2, t=500)], [young], [node("n", free=[])],
                                             now=1000), thresholds=(3600.0,), min_run=0.0)
    assert preempts == []


def test_las_with_min_run_0_never_stops_a_job_at_the_instant_it_started():
    # min_run 0 lets a job be preempted as soon as it has run at all, but not at the very
    # instant it (re)started: jobs restarted and stopped again at one instant undid each other's
    # decisions forever (the replay below stopped with SimulationStuck).
    just = running(job("just", 8, ws="v", attained=100_000.0), {"n": range(8)}, started=1000)
    _, preempts, d = decide("las", snap([job("new", 2, t=500)], [just], [node("n", free=[])], now=1000),
                            thresholds=(3600.0,), min_run=0.0)
    assert preempts == [] and d.wake_at is not None and 1000 < d.wake_at < 1000.001
    _, preempts, _ = decide("las", snap([job("new", 2, t=500)], [just], [node("n", free=[])], now=1000.01),
                            thresholds=(3600.0,), min_run=0.0)
    assert preempts == [("just", "new")]


def test_las_with_min_run_0_replays_to_the_end(tmp_path):
    """A generated trace on 4 x 8 GPUs on which ``las`` with ``min_run`` 0 used to make
    10,000 decisions at one instant (SimulationStuck); every job now completes."""
    from flightbase_jobqueue.sim.replay import replay
    from tests.helpers.traces import write_random_trace

    trace = write_random_trace(tmp_path / "t.csv", seed=8, jobs=300, max_gap=60, gpus=[1, 1, 1, 2, 4, 8],
                               lognormal=(7.5, 1.5), groups=["a", "b"])
    r = replay(str(trace), 4, 8, "las", "none", 60.0, policy_options={"min_run": 0.0})
    assert r["completed"] == r["jobs"] == 300
    assert r["preemptions_per_job"] > 0


def test_las_never_preempts_non_preemptible_or_too_young():
    nb = running(lease("nb", "v"), {"n": [0]}, started=0)
    young = running(job("young", 7, attained=1e6), {"n": range(1, 8)}, started=900)
    _, preempts, d = decide("las", snap([job("new", 1, t=950)], [nb, young], [node("n", free=[])], now=1000),
                            thresholds=(3600.0,), min_run=300.0)
    assert preempts == []
    assert d.wake_at == 1200.0  # when "young" may be preempted


def test_las_smaller_jobs_pass_a_blocked_one_and_starvation_promotes():
    queue = [job("big", 8, t=0), job("small", 1, t=1)]
    s = snap(queue, nodes=[node("n", free=[0])], now=10)
    admits, _, _ = decide("las", s)
    assert admits == {"small": {"n": (0,)}}
    p = make_policy("las", starve_after=100.0)
    assert p.rank(queue[0], 50)[0] == 0 and p.rank(queue[0], 150)[0] == -1


def test_las_promotes_a_job_after_twice_what_it_has_run_and_at_least_starve_after():
    # 5 h run on 8 GPUs (40 GPU-hours attained), queued again at t=1000: promoted after
    # max(6 h, 2 x 5 h) = 10 h queued, not after 6 h (starve_factor 2, the default); a job
    # that ran 1 h is promoted after the 6 h of starve_after.
    p = make_policy("las")
    long = job("long", 8, t=0, attained=8 * 5 * 3600.0, enqueued_at=1000.0)
    assert p.rank(long, 1000 + 6 * 3600)[0] >= 0
    assert p.rank(long, 1000 + 10 * 3600 - 1)[0] >= 0 and p.rank(long, 1000 + 10 * 3600)[0] == -1
    short = job("short", 8, t=0, attained=8 * 3600.0, enqueued_at=1000.0)
    assert p.rank(short, 1000 + 6 * 3600 - 1)[0] >= 0 and p.rank(short, 1000 + 6 * 3600)[0] == -1


def _history(**runtimes):
    """Runtime history: workspace -> (GPUs, seconds) of completed jobs, three each."""
    from flightbase_jobqueue.scheduling.estimates import HistoryEstimates
    est = HistoryEstimates()
    for ws, (gpus, seconds) in runtimes.items():
        for k in range(3):
            est.observe(job(f"{ws}-done{k}", gpus, ws=ws), seconds + k)
    return est


def test_las_ranks_a_gang_job_by_the_work_its_history_expects():
    # Workspace "long"'s 8-GPU jobs ran 100 h (800 GPU-hours: level 2 of 16 / 256 / 1,024),
    # "short"'s ran 30 min. Both queue an 8-GPU job for one free node; "long"'s came first.
    # Plain LAS (expect_scale 0) runs first come first served within level 0; the
    # expected-remaining level lets the job expected to be short go first, and the long one
    # waits at level 2 (without its history it would not: "as long again" is plain LAS).
    est = _history(long=(8, 100 * 3600.0), short=(8, 1800.0))
    queue = [job("l", 8, ws="long", t=0), job("s", 8, ws="short", t=1)]
    s = snap(queue, nodes=[node("n")], now=10, estimates=est)
    assert decide("las", s, expect_scale=0.0, expect_order=False)[0] == {"l": {"n": tuple(range(8))}}
    p = make_policy("las")
    d = p.schedule(s)
    assert {a.job_id for a in d.admits} == {"s"}
    assert p.rank(queue[0], 10)[0] == 2 and p.rank(queue[1], 10)[0] == 0
    assert decide("las", snap(queue, nodes=[node("n")], now=10, estimates=_history(other=(8, 1e6))))[0] == {
        "l": {"n": tuple(range(8))}}


def test_las_expected_remaining_levels_are_for_gang_jobs_only_and_make_them_victims():
    # A running 8-GPU job of "long" that has run 20 min (160 GPU-minutes: level 0 by LAS) is
    # at level 2 by its history, so a new 2-GPU job may preempt it once min_run is past; a
    # one-GPU job's level is its attained service alone (expect_min_gpus 2).
    est = _history(long=(8, 100 * 3600.0))
    big = running(job("big", 8, ws="long"), {"n": range(8)}, started=0)
    s = snap([job("new", 2, t=1000)], [big], [node("n", free=[])], now=1200, estimates=est)
    assert decide("las", s, expect_scale=0.0, min_run=600.0)[1] == []
    _, preempts, _ = decide("las", s, min_run=600.0)
    assert preempts == [("big", "new")]
    p = make_policy("las")
    p.schedule(snap(nodes=[node("n")], estimates=_history(long=(1, 2000 * 3600.0))))
    assert p.job_level(job("one", 1, ws="long"), 0.0) == 0


def test_las_keeps_an_expectation_for_a_doubling_of_run_time_and_estimates_do_not_keep_new_ones():
    # The level taken at a run time holds while the history changes, until the job's run
    # time doubles (10, 20, 40 min ...); a read with store=False (the queue's projection)
    # does not keep what it computes.
    est = _history(long=(8, 100 * 3600.0))
    p = make_policy("las")
    p.schedule(snap(nodes=[node("n")], estimates=est))
    j = job("j", 8, ws="long")
    assert p.job_level(j, 8 * 700.0, store=False) == 2
    for k in range(3, 40):  # the workspace's 8-GPU jobs now end in 15 min
        est.observe(job(f"long-done{k}", 8, ws="long"), 900.0)
    assert p.job_level(j, 8 * 700.0) == 0  # nothing kept by the read above: taken now
    assert p.job_level(j, 8 * 1100.0) == 0  # kept until 20 min
    for k in range(40, 120):
        est.observe(job(f"long-done{k}", 8, ws="long"), 100 * 3600.0)
    assert p.job_level(j, 8 * 1100.0) == 0
    assert p.job_level(j, 8 * 1300.0) == 2  # 20 min: taken again


def test_las_orders_a_level_by_expected_work_keeping_jobs_alike_in_order():
    # Within level 0, one-GPU jobs: workspace "long"'s ran 10 h, "short"'s 20 min, and
    # "long"'s job queued first.  With one GPU free, "short"'s goes first (expect_order, the
    # default); first come first served without it.
    est = _history(long=(1, 10 * 3600.0), short=(1, 1200.0))
    queue = [job("l", 1, ws="long", t=0), job("s", 1, ws="short", t=1)]
    s = snap(queue, nodes=[node("n", free=[0])], now=10, estimates=est)
    assert decide("las", s)[0] == {"s": {"n": (0,)}}
    assert decide("las", s, expect_order=False)[0] == {"l": {"n": (0,)}}
    # Jobs alike stay first come first served while the history changes between their
    # submissions: "b" is queued after "long"'s jobs started ending in a minute, and still
    # waits behind "a" (one expectation per workspace and size until the hourly refresh).
    p = make_policy("las", expect_order=True)
    p.schedule(snap([job("a", 1, ws="long", t=0)], nodes=[node("n", free=[])], now=10, estimates=est))
    for k in range(3, 40):
        est.observe(job(f"long-done{k}", 1, ws="long"), 60.0)
    both = [job("a", 1, ws="long", t=0), job("b", 1, ws="long", t=20)]
    d = p.schedule(snap(both, nodes=[node("n", free=[0])], now=30, estimates=est))
    assert {a.job_id for a in d.admits} == {"a"}
    assert p.rank(both[0], 30)[1] == p.rank(both[1], 30)[1] > 3600
    # An hour later the expectation is taken again, for both.
    p.schedule(snap(both, nodes=[node("n", free=[])], now=3700, estimates=est))
    assert p.rank(both[0], 3700)[1] == p.rank(both[1], 3700)[1] < 600
    # A notebook lease (unknown length, not preemptible) never passes an older job by its
    # expectation: it would hold the GPU that job waits for (head-of-line rule 5).
    nb = lease("nb", "short", submitted_at=5)
    s = snap([queue[0], nb], nodes=[node("n", free=[0])], now=10,
             estimates=_history(long=(1, 10 * 3600.0), short=(1, 1200.0)))
    assert decide("las", s, expect_order=True)[0] == {"l": {"n": (0,)}}


def test_las_expect_gate_spares_a_job_expected_to_end_before_its_claimer():
    # A one-GPU job of "mid" has run 20 h (level 1); "mid"'s jobs run 21 h, so it is
    # expected to end in about an hour.  A new job of "long" (its jobs run 100 h) does not
    # stop it with expect_order (expect_gate 2: the victim must expect more than twice the
    # claimer's work); a new job of "short" (20 min) does, and without the gate so does "long"'s.
    est = _history(mid=(1, 21 * 3600.0), long=(1, 100 * 3600.0), short=(1, 1200.0))
    v = running(job("v", 1, ws="mid", attained=19 * 3600.0), {"n": [0]}, started=0)

    def claim(ws, **opts):
        s = snap([job("c", 1, ws=ws, t=3000)], [v], [node("n", total=1, free=[])], now=3700, estimates=est)
        return decide("las", s, expect_order=True, **opts)[1]
    assert claim("long") == []
    assert claim("short") == [("v", "c")]
    assert claim("long", expect_gate=0.0) == [("v", "c")]


def test_sjf_orders_by_declared_runtime():
    queue = [job("slow", 1, t=0, max_runtime=500), job("fast", 1, t=1, max_runtime=5)]
    admits, _, _ = decide("sjf", snap(queue, nodes=[node("n", free=[0])]))
    assert admits == {"fast": {"n": (0,)}}


def test_unknown_policy_lists_known_names():
    with pytest.raises(UnknownPolicy, match="known policies: backfill, fairshare, fifo, las, sjf"):
        make_policy("lottery")


def test_estimates_never_use_the_true_duration():
    assert DeclaredOrDefault(60.0).estimate(job("j")) == 60.0


def _over_quota_cluster():
    # t (quota 5) runs 6 one-GPU jobs (one borrowed); u (quota 3) runs 2 GPUs.
    active = [running(job(f"t{i}", 1, ws="t"), {"n": [i]}, started=float(i)) for i in range(6)]
    active.append(running(job("u0", 2, ws="u"), {"n": [6, 7]}))
    return active, {"t": quota(5), "u": quota(3)}


@pytest.mark.parametrize("policy", ALL)
def test_reclaim_only_what_the_guarantee_leaves_room_for(policy):
    # u's head needs 2 GPUs (it would borrow); the 1-GPU job behind it fits
    # u's guarantee and reclaims one GPU; the next one would not fit: one
    # preemption in all, not one per queued job.
    active, limits = _over_quota_cluster()
    queue = [job("u-big", 2, ws="u", t=10), job("u-small", 1, ws="u", t=11), job("u-more", 1, ws="u", t=12)]
    admits, preempts, d = decide(policy, snap(queue, active, [node("n", free=[])], now=1000, limits=limits))
    assert (admits, preempts) == ({}, [("t5", "u-small")])
    assert "within quota, waiting for 1 borrowed job(s) to stop" in d.waiting["u-small"]


@pytest.mark.parametrize("policy", ALL)
def test_reclaimed_gpus_go_to_the_claimer_not_an_earlier_borrower(policy):
    # The victim has stopped: its GPU is free.  t7, queued earlier, would
    # borrow it; u-small, within u's guarantee, gets it (no ping-pong).
    active, limits = _over_quota_cluster()
    active = active[:5] + active[6:]
    queue = [job("t7", 1, ws="t", t=5), job("u-big", 2, ws="u", t=10), job("u-small", 1, ws="u", t=11)]
    admits, preempts, _ = decide(policy, snap(queue, active, [node("n", free=[5])], now=1000, limits=limits))
    assert (admits, preempts) == ({"u-small": {"n": (5,)}}, [])


@pytest.mark.parametrize("policy", ALL)
def test_a_reclaim_takes_a_workspace_s_jobs_only_while_it_is_still_borrowing(policy):
    """Kueue's rule for reclaiming within a cohort (a candidate only while its ClusterQueue is
    still borrowing, counting the candidates already taken): ``t`` (quota 4) holds 5 GPUs,
    ``t-new`` (1) and ``t-old`` (4); ``v`` (no quota) holds 3. ``u1`` (4 GPUs, within ``u``'s
    guarantee) reclaims ``t-new`` first (the newest), and then ``v1``, not ``t-old``: without
    ``t-new`` ``t`` holds its guarantee and borrows nothing. Until 2026-12-06 the pass took
    ``t-old`` too (``t`` had been over its guarantee when the search began); ``t`` was then left
    with nothing, ``t-old`` was within its guarantee again and reclaimed GPUs back at the next
    pass. The queue's projection did the same, at one instant and in a loop: on the live scale
    bench a projection made 20,000 reclaims and took 60-130 MB (docs/benchmarks.md)."""
    active = [running(job("t-old", 4, ws="t"), {"n": [0, 1, 2, 3]}, started=5),
              running(job("t-new", 1, ws="t"), {"n": [4]}, started=10),
              running(job("v1", 3, ws="v"), {"n": [5, 6, 7]}, started=0)]
    limits = {"t": quota(4), "u": quota(4)}
    admits, preempts, _ = decide(policy, snap([job("u1", 4, ws="u", t=20)], active, [node("n", free=[])],
                                              now=5000, limits=limits))
    assert admits == {}
    assert sorted(preempts) == [("t-new", "u1"), ("v1", "u1")]


def test_the_projection_reclaims_as_the_pass_does_only_while_the_victim_s_workspace_borrows():
    """The projection's reclaim (``insight._reclaim``) on the table above: it gives back
    ``t-new`` and ``v1`` for ``u1``, never ``t-old``, and places ``u1`` on their GPUs."""
    from flightbase_jobqueue.scheduling import insight
    from flightbase_jobqueue.scheduling.placement import FreeMap

    t_old, t_new, v1 = job("t-old", 4, ws="t"), job("t-new", 1, ws="t"), job("v1", 3, ws="v")
    s = snap([], [running(t_old, {"n": [0, 1, 2, 3]}), running(t_new, {"n": [4]}), running(v1, {"n": [5, 6, 7]})],
             [node("n", free=[])], now=5000, limits={"t": quota(4), "u": quota(4)})
    quotas = insight._Quotas.of(s, (a.job for a in s.active))
    holders = {h.job.id: h for h in (
        insight._Holder(a.job, dict(a.placement), a.started_at, 0.0, 9000.0, True, k)
        for k, a in enumerate(s.active))}
    holders["t-old"].run_start, holders["t-new"].run_start, holders["v1"].run_start = 5.0, 10.0, 0.0
    fm = FreeMap(s.nodes)
    requeued: list = []
    p = insight._reclaim(fm, job("u1", 4, ws="u"), holders, quotas, lambda h: insight._requeue(
        fm, h, holders, requeued, 5000.0, make_policy("las")))
    assert sorted(e[1].id for e in requeued) == ["t-new", "v1"]
    assert p == {"n": (4, 5, 6, 7)}


def test_las_skips_only_victim_searches_that_would_fail(tmp_path, monkeypatch):
    """Within a pass ``las`` does not repeat a victim search that an earlier one at the same
    level, with no higher gate (``expect_gate``) and no more GPUs, showed would fail
    (``_failed_before``).  A replay of a loaded generated trace (three workspaces whose jobs
    run minutes, an hour and ten hours, every size up to a node) schedules exactly as one
    that makes every search; the check is not vacuous: searches are skipped."""
    import random

    from flightbase_jobqueue.scheduling.policies import las
    from flightbase_jobqueue.sim.replay import replay
    from tests.helpers.traces import HEADER

    rng = random.Random(11)
    rows, t = [], 0
    for i in range(240):
        t += rng.randint(60, 600)
        ws, scale = rng.choice([("quick", 900), ("mid", 3600), ("slow", 36000)])
        rows.append(f"j{i},{t},{rng.choice([1, 1, 1, 2, 4, 8])},{int(scale * rng.uniform(0.5, 1.5))},{ws},,,\n")
    path = tmp_path / "mixed.csv"
    path.write_text(HEADER + "".join(rows))
    keys = ("avg_jct", "preemptions", "median_jct")
    skipped = []
    real = las._failed_before

    def counting(failed, floor, gpus):
        r = real(failed, floor, gpus)
        skipped.append(r)
        return r
    monkeypatch.setattr(las, "_failed_before", counting)
    kept = replay(str(path), 2, 8, "las", restart_cost=30, record_estimates=False)
    monkeypatch.setattr(las, "_failed_before", lambda failed, floor, gpus: False)
    every = replay(str(path), 2, 8, "las", restart_cost=30, record_estimates=False)
    assert any(skipped)
    assert {k: kept[k] for k in keys} == {k: every[k] for k in keys}
    assert kept["preemptions"] > 0


def test_las_searches_again_for_a_smaller_claimer_after_a_failed_search():
    # Node n has two GPUs: a non-preemptible job holds one, v (level 1; its workspace's jobs
    # run 100 h) the other.  At level 0, "a" (2 GPUs; its jobs run 10 min) is ranked before
    # "b" (1 GPU; 1 h): a's search fails (it would need both GPUs); b's, for fewer GPUs,
    # must still be made, and stops v.
    est = _history(quick=(2, 600.0), mid=(1, 3600.0), vic=(1, 100 * 3600.0))
    active = [running(job("v", 1, ws="vic", attained=19 * 3600.0), {"n": [0]}, started=0),
              running(job("u", 1, ws="vic", preemptible=False), {"n": [1]}, started=0)]
    queue = [job("a", 2, ws="quick", t=3000), job("b", 1, ws="mid", t=3100)]
    s = snap(queue, active, [node("n", total=2, free=[])], now=3700, estimates=est)
    admits, preempts, d = decide("las", s)
    assert (admits, preempts) == ({}, [("v", "b")])
    assert "a" in d.waiting
