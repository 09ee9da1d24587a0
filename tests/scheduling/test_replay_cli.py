"""``flightbase bench replay``: the default policy, and its ``--json`` output as documented.

The command runs through the real ``flightbase`` console entry point
(:func:`flightbase.cli.main`), the real scheduler and coordinator on a small
synthetic trace.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from flightbase import cli
from flightbase_server.platform import prepare
from flightbase_server.settings import PlatformSettings
from flightbase_jobqueue.scheduling.policies import DEFAULT_POLICY, POLICIES

from tests.helpers.traces import HEADER, write_random_trace

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "scheduling.md"
# wall_s and cpu_s are the replay's own running time: the only figures that differ between two runs
TIMING = ("wall_s", "cpu_s")


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    return write_random_trace(tmp_path_factory.mktemp("trace") / "trace.csv", seed=11, jobs=120, max_gap=90,
                              gpus=[1, 1, 1, 2, 4, 8], lognormal=(6, 1.4), groups=["ga", "gb", "gc"])


def bench(capsys, *argv: str) -> dict:
    """``flightbase bench replay ... --json`` as a person runs it; its output, parsed."""
    capsys.readouterr()
    assert cli.main(["bench", "replay", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def without_timing(r: dict) -> dict:
    return {k: v for k, v in r.items() if k not in TIMING}


def test_without_policy_the_replay_uses_the_platforms_default_policy(trace, capsys):
    args = ("--trace", trace, "--nodes", "2", "--gpus-per-node", "8", "--restart-cost", "30")
    default = bench(capsys, *args)
    assert default["policy"] == DEFAULT_POLICY
    named = bench(capsys, *args, "--policy", DEFAULT_POLICY)
    assert without_timing(default) == without_timing(named)
    # and the figures are that policy's, not another's: some other policy gives other figures here
    others = [bench(capsys, *args, "--policy", name) for name in sorted(POLICIES) if name != DEFAULT_POLICY]
    assert any((o["avg_jct"], o["preemptions"]) != (default["avg_jct"], default["preemptions"]) for o in others)


def test_the_default_is_the_jobqueues_default(tmp_path):
    """The replay's default is the name the platform runs with when nothing is configured:
    the settings' default, ``flightbase up``'s and the composition's all say the same."""
    assert PlatformSettings.__dataclass_fields__["scheduler_policy"].default == DEFAULT_POLICY
    up = cli.build_parser().parse_args(["up"])
    assert up.policy == DEFAULT_POLICY
    settings, _, _ = prepare(port=8000, data_dir=tmp_path / "data", gpu_spec="1", environ={})
    assert settings.scheduler_policy == DEFAULT_POLICY
    replay_args = cli.build_parser().parse_args(["bench", "replay", "--trace", "t", "--nodes", "1",
                                                 "--gpus-per-node", "1"])
    assert replay_args.policy == DEFAULT_POLICY


def documented_keys() -> list[str]:
    text = DOC.read_text()
    section = re.search(r"^## The replay command\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert section, "docs/scheduling.md has no section '## The replay command'"
    keys = re.findall(r"^\| `([^`]+)` \|", section.group(1), re.M)
    assert len(keys) == len(set(keys)), "a key is documented twice"
    return keys


# objects whose object-valued entries are groups of the same summary: each group is
# listed by name, and the summaries' keys once, as ``NAME.<group>.KEY``
GROUPED = ("waits", "estimates")


def output_keys(r: dict) -> set[str]:
    """Every key of the output as a dotted path; a workspace's name reads ``<workspace>``, and
    the keys of a summary in a :data:`GROUPED` object ``NAME.<group>.KEY``."""
    keys: set[str] = set()

    def walk(obj: dict, prefix: str) -> None:
        for k, v in obj.items():
            keys.add(prefix + k)
            if not isinstance(v, dict):
                continue
            if prefix + k == "workspaces":
                assert v, "the replay reported no workspace"
                for summary in v.values():
                    walk(summary, "workspaces.<workspace>.")
            elif prefix + k in GROUPED:
                for group, summary in v.items():
                    keys.add(f"{prefix}{k}.{group}")
                    if isinstance(summary, dict):
                        walk(summary, f"{prefix}{k}.<group>.")
            else:
                walk(v, f"{prefix}{k}.")

    walk(r, "")
    return keys


def test_every_json_key_is_documented_and_every_documented_key_exists(trace, capsys):
    # quotas and notebooks on: every optional part of the output is there
    r = bench(capsys, "--trace", trace, "--nodes", "2", "--gpus-per-node", "8", "--quotas", "proportional",
              "--notebooks-per-hour", "30", "--limit-jobs", "60", "--estimates", "--start-day", "0",
              "--reference")
    assert r["window"] is not None and r["reference"] is not None
    assert r["notebooks"]["submitted"] > 0 and any(w["quota"] is not None for w in r["workspaces"].values())
    assert r["estimates"] is not None and r["estimates"]["shown"] > 0
    documented, produced = set(documented_keys()), output_keys(r)
    assert produced - documented == set(), "keys in the --json output missing from docs/scheduling.md"
    assert documented - produced == set(), "keys documented in docs/scheduling.md that the output lacks"


def test_the_documented_keys_are_read_from_the_doc():
    """The check above can fail: the parser finds the table (a mangled doc fails it)."""
    keys = documented_keys()
    assert {"avg_jct", "policy", "workspaces.<workspace>.gpu_share", "waits.<group>.p95"} <= set(keys)


def _day_rows(day: int, at: float) -> str:
    """Day ``day``'s 40 jobs (one every 10 min, 1 or 2 GPUs, 50 to 104 min each: more work than
    two GPUs do in the day's first hours), submitted from ``at`` seconds."""
    return "".join(f"d{day}-{i},{at + i * 600:g},{1 + i % 2},{3000 + 537 * (i % 7)},g{i % 3},,,\n"
                   for i in range(40))


def _day_trace(path: Path) -> str:
    """Jobs over three days, 40 on each (the window tests' trace)."""
    path.write_text(HEADER + "".join(_day_rows(d, d * 86400) for d in range(3)))
    return str(path)


def test_start_day_replays_the_windows_jobs_exactly_as_a_file_of_them_alone(tmp_path, capsys):
    """``--start-day 1 --days 1`` replays day 1's jobs and nothing else: the same figures as a
    file holding only them, re-based to the window's start, replayed whole."""
    full = _day_trace(tmp_path / "full.csv")
    alone = tmp_path / "day1.csv"
    alone.write_text(HEADER + _day_rows(1, 0))
    args = ("--nodes", "1", "--gpus-per-node", "2", "--restart-cost", "30")
    cut = bench(capsys, "--trace", full, *args, "--start-day", "1", "--days", "1")
    whole = bench(capsys, "--trace", str(alone), *args)
    assert cut["window"] == {"start_day": 1.0, "days": 1.0}
    assert cut["jobs"] == 40 and cut["completed"] == 40
    same = ("avg_jct", "median_jct", "queue_delay_p99", "makespan", "preemptions", "workspaces")
    assert {k: cut[k] for k in same} == {k: whole[k] for k in same}
    # and the whole file is something else
    assert bench(capsys, "--trace", full, *args)["jobs"] == 120


def test_reference_reports_the_srtf_replay_of_the_same_jobs_and_the_ratio(tmp_path, capsys):
    from flightbase_jobqueue.sim.reference import srtf_reference
    from flightbase_jobqueue.sim.trace import read_trace, window

    full = _day_trace(tmp_path / "full.csv")
    r = bench(capsys, "--trace", full, "--nodes", "1", "--gpus-per-node", "2", "--policy", "fifo",
              "--start-day", "2", "--reference")
    ref = srtf_reference(window(read_trace(full), 2.0, 14.0).jobs, 2)
    assert r["reference"] == {"avg_jct": ref["avg_jct"], "completed": 40, "preemptions": ref["preemptions"]}
    assert r["vs_reference"] == pytest.approx(r["avg_jct"] / ref["avg_jct"])
    assert r["vs_reference"] > 1.0  # FIFO on a loaded node, against a scheduler that knows every duration
    assert r["preemptions_per_job"] == r["preemptions"] / r["jobs"]
    without = bench(capsys, "--trace", full, "--nodes", "1", "--gpus-per-node", "2", "--policy", "fifo",
                    "--start-day", "2")
    assert without["reference"] is None and without["vs_reference"] is None


@pytest.mark.parametrize("argv, field", [
    (("--start-day", "-1"), "--start-day"),
    (("--start-day", "nan"), "--start-day"),
    (("--start-day", "1", "--days", "0"), "--days"),
    (("--days", "-2"), "--days"),
    (("--start-day", "30"), "--start-day 30"),  # no job in that window
])
def test_a_bad_window_exits_2_with_one_line_naming_the_option(tmp_path, capsys, argv, field):
    full = _day_trace(tmp_path / "full.csv")
    capsys.readouterr()
    code = cli.main(["bench", "replay", "--trace", full, "--nodes", "1", "--gpus-per-node", "2", *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and field in err and "Traceback" not in err
