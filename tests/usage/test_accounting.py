"""Usage accounting, the pure part: clipping, day splitting, grouping, parameters, CSV.

Table tests with literal expectations, then properties: for random runs of
jobs with preemption gaps between them, every grouping adds up to the GPU time
of the runs (the gaps never counted), and a window split in two adds up to the
whole.
"""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flightbase_jobqueue.accounting import (DAY, Interval, UsageRow, aggregate, clip, day_of, day_pieces,
                                            default_window, iso, parse_group_by, parse_time, to_csv)

T0 = 1_764_547_200.0  # 2025-12-01T00:00:00Z
H = 3600.0


def iv(ws="w", user="u", gpus=1, start=0.0, end=None, **kw) -> Interval:
    return Interval(ws, user, gpus, T0 + start, None if end is None else T0 + end, **kw)


def rows(intervals, start=0.0, end=DAY * 3, now=DAY * 3, group_by=("workspace",)):
    return [(r.key, r.gpu_seconds) for r in aggregate(intervals, start=T0 + start, end=T0 + end, now=T0 + now,
                                                      group_by=group_by)]


def test_t0_is_midnight_utc():
    assert iso(T0) == "2025-12-01T00:00:00Z" and day_of(T0) == "2025-12-01" and day_of(T0 - 1) == "2025-11-30"


@pytest.mark.parametrize(("interval", "window", "now", "expected"), [
    (iv(start=10, end=20), (0, 100), 100, (10, 20)),  # inside
    (iv(start=10, end=20), (15, 100), 100, (15, 20)),  # cut at the start
    (iv(start=10, end=20), (0, 12), 100, (10, 12)),  # cut at the end
    (iv(start=10, end=20), (20, 30), 100, None),  # [from, to): touching is not overlapping
    (iv(start=10, end=20), (0, 10), 100, None),
    (iv(start=10), (0, 100), 50, (10, 50)),  # open: up to now
    (iv(start=10), (0, 30), 50, (10, 30)),  # open, window ends before now
    (iv(start=60), (0, 100), 50, None),  # starts after now (clock skew): nothing
])
def test_clip(interval, window, now, expected):
    got = clip(interval, T0 + window[0], T0 + window[1], T0 + now)
    assert got == (None if expected is None else (T0 + expected[0], T0 + expected[1]))


@pytest.mark.parametrize(("start", "end", "expected"), [
    (1 * H, 2 * H, [("2025-12-01", 1 * H, 2 * H)]),
    (23 * H, 25 * H, [("2025-12-01", 23 * H, 24 * H), ("2025-12-02", 24 * H, 25 * H)]),  # across midnight
    (0, DAY, [("2025-12-01", 0, DAY)]),  # exactly one day: no empty piece for the next
    (23 * H, 49 * H, [("2025-12-01", 23 * H, DAY), ("2025-12-02", DAY, 2 * DAY), ("2025-12-03", 2 * DAY, 49 * H)]),
])
def test_day_pieces(start, end, expected):
    assert list(day_pieces(T0 + start, T0 + end)) == [(d, T0 + s, T0 + e) for d, s, e in expected]


def test_group_by_workspace_user_and_day():
    intervals = [
        iv("a", "ann", 2, 1 * H, 3 * H),  # 4 GPU-hours on day 1
        iv("a", "bob", 1, 23 * H, 26 * H),  # 1 on day 1, 2 on day 2
        iv("b", "ann", 4, 30 * H, 30.5 * H),  # 2 on day 2
        iv("b", "cat", 1, 47 * H),  # open: 1 on day 2, 2 on day 3 (now = 50 h)
    ]
    now = 50 * H
    assert rows(intervals, now=now) == [(("a",), 7 * H), (("b",), 5 * H)]
    assert rows(intervals, now=now, group_by=("user",)) == [(("ann",), 6 * H), (("bob",), 3 * H), (("cat",), 3 * H)]
    assert rows(intervals, now=now, group_by=("day",)) == [
        (("2025-12-01",), 5 * H), (("2025-12-02",), 5 * H), (("2025-12-03",), 2 * H)]
    assert rows(intervals, now=now, group_by=("day", "user")) == [
        (("2025-12-01", "ann"), 4 * H), (("2025-12-01", "bob"), 1 * H),
        (("2025-12-02", "ann"), 2 * H), (("2025-12-02", "bob"), 2 * H), (("2025-12-02", "cat"), 1 * H),
        (("2025-12-03", "cat"), 2 * H)]
    assert rows(intervals, now=now, group_by=("workspace", "user", "day"))[:2] == [
        (("a", "ann", "2025-12-01"), 4 * H), (("a", "bob", "2025-12-01"), 1 * H)]
    # a window: day 2 from 06:00 to 24:00
    assert rows(intervals, start=30 * H, end=48 * H, now=now, group_by=("user",)) == [
        (("ann",), 2 * H), (("cat",), 1 * H)]


def test_a_preempted_job_counts_its_runs_not_the_gap():
    runs = [iv(gpus=4, start=0, end=1 * H, job_id="j", outcome="preempted"),
            iv(gpus=4, start=3 * H, end=4 * H, job_id="j", outcome="succeeded")]
    assert rows(runs) == [(("w",), 8 * H)]
    assert rows(runs, start=1 * H, end=3 * H) == []  # the gap: nothing


def test_gpu_hours_and_nothing_in_an_empty_window():
    assert UsageRow(("w",), 5400.0).gpu_hours == 1.5
    assert rows([iv(start=0, end=10)], start=100, end=200) == []
    with pytest.raises(ValueError, match="group_by"):
        aggregate([], start=0, end=1, now=1, group_by=("job",))


@pytest.mark.parametrize(("text", "expected"), [
    (None, ("workspace",)),
    ("workspace", ("workspace",)),
    ("day,user", ("day", "user")),
    (" user , day ", ("user", "day")),
    ("workspace,user,day", ("workspace", "user", "day")),
])
def test_parse_group_by(text, expected):
    assert parse_group_by(text) == expected


@pytest.mark.parametrize(("text", "words"), [
    ("", "one or more"),
    ("job", "unknown key 'job'"),
    ("user,", "unknown key ''"),
    ("user,user", "twice"),
])
def test_parse_group_by_refuses(text, words):
    with pytest.raises(ValueError, match=words):
        parse_group_by(text)


@pytest.mark.parametrize(("text", "expected"), [
    ("2025-12-01", T0),  # a date: midnight UTC
    ("2025-12-01T06:00:00", T0 + 6 * H),  # no offset: UTC
    ("2025-12-01T06:00:00Z", T0 + 6 * H),
    ("2025-12-01T08:00:00+02:00", T0 + 6 * H),
    ("2025-12-01 06:30", T0 + 6.5 * H),
])
def test_parse_time(text, expected):
    assert parse_time(text) == expected


@pytest.mark.parametrize("text", ["yesterday", "2025-13-01", "2025-12-01T25:00", "", "1764547200"])
def test_parse_time_refuses(text):
    with pytest.raises(ValueError, match="ISO date"):
        parse_time(text)


def test_default_window_is_thirty_utc_days_up_to_now():
    now = T0 + 10 * H
    start, end = default_window(now)
    assert end == now and iso(start) == "2025-11-02T00:00:00Z"
    assert len({d for d, _, _ in day_pieces(start, end)}) == 30


def test_csv_has_a_header_and_the_rows():
    text = to_csv([UsageRow(("2025-12-01", "ann"), 5400.0), UsageRow(("2025-12-01", "b,ob"), 1.0)], ("day", "user"))
    assert text.splitlines()[0] == "day,user,gpu_seconds,gpu_hours"
    assert list(csv.DictReader(io.StringIO(text))) == [
        {"day": "2025-12-01", "user": "ann", "gpu_seconds": "5400.000", "gpu_hours": "1.500000"},
        {"day": "2025-12-01", "user": "b,ob", "gpu_seconds": "1.000", "gpu_hours": "0.000278"}]


# -- properties -------------------------------------------------------------------------
GROUPINGS = [(), ("workspace",), ("user",), ("day",), ("day", "user"), ("workspace", "user", "day")]


@st.composite
def placements(draw):
    """Jobs, each with one or more runs separated by preemption gaps: (intervals, true GPU-seconds)."""
    intervals, total = [], 0.0
    for j in range(draw(st.integers(0, 6))):
        ws, user, gpus = draw(st.sampled_from("ab")), draw(st.sampled_from(["ann", "bob", "cat"])), draw(st.integers(1, 8))
        t = draw(st.floats(0, 3 * DAY))
        for r in range(draw(st.integers(1, 4))):
            length = draw(st.floats(0, DAY))
            intervals.append(iv(ws, user, gpus, t, t + length, job_id=f"j{j}"))
            total += gpus * length
            t += length + draw(st.floats(1, DAY))  # the gap before the restart
    return intervals, total


def _sum(intervals, start, end, now, group_by):
    return sum(r.gpu_seconds for r in aggregate(intervals, start=start, end=end, now=now, group_by=group_by))


@settings(max_examples=200, deadline=None)
@given(placements(), st.sampled_from(GROUPINGS))
def test_every_grouping_adds_up_to_the_runs(data, group_by):
    intervals, total = data
    far = T0 + 30 * DAY
    # each interval's seconds come from epoch times near 1.7e9 s, exact only to ~4e-7 s (float64),
    # times its GPUs: a missing or doubled run is off by at least a second
    assert _sum(intervals, T0 - DAY, far, far, group_by) == pytest.approx(total, rel=1e-9,
                                                                            abs=1e-5 * (1 + len(intervals)))


@settings(max_examples=200, deadline=None)
@given(placements(), st.sampled_from(GROUPINGS), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1))
def test_a_window_split_in_two_adds_up_to_the_whole(data, group_by, a, b, c):
    intervals, _ = data
    lo, hi = sorted((T0 + a * 5 * DAY, T0 + b * 5 * DAY))
    mid = lo + c * (hi - lo)
    whole = aggregate(intervals, start=lo, end=hi, now=hi, group_by=group_by)
    left = aggregate(intervals, start=lo, end=mid, now=hi, group_by=group_by)
    right = aggregate(intervals, start=mid, end=hi, now=hi, group_by=group_by)
    halves: dict = {}
    for r in left + right:
        halves[r.key] = halves.get(r.key, 0.0) + r.gpu_seconds
    wholes = {r.key: r.gpu_seconds for r in whole}
    for key in wholes.keys() | halves.keys():
        assert halves.get(key, 0.0) == pytest.approx(wholes.get(key, 0.0), rel=1e-9, abs=1e-6), key


@settings(max_examples=100, deadline=None)
@given(placements(), st.floats(0, 2 * DAY))
def test_open_intervals_count_up_to_now(data, since):
    """Leaving the last run of each job open is the same as closing it at now."""
    intervals, _ = data
    now = T0 + 4 * DAY
    last = {}
    for i, x in enumerate(intervals):
        last[x.job_id] = i
    opened = [Interval(x.workspace, x.user, x.gpus, x.started_at, None if i in last.values() else x.ended_at,
                       job_id=x.job_id) for i, x in enumerate(intervals)]
    closed = [Interval(x.workspace, x.user, x.gpus, x.started_at, now if x.ended_at is None else x.ended_at,
                       job_id=x.job_id) for x in opened]
    start = T0 + since
    for group_by in GROUPINGS:
        assert _sum(opened, start, now + DAY, now, group_by) == pytest.approx(
            _sum(closed, start, now + DAY, now, group_by), rel=1e-9, abs=1e-6)
