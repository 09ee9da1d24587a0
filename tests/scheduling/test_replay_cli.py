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

from tests.helpers.traces import write_random_trace

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
              "--notebooks-per-hour", "30", "--limit-jobs", "60", "--estimates")
    assert r["notebooks"]["submitted"] > 0 and any(w["quota"] is not None for w in r["workspaces"].values())
    assert r["estimates"] is not None and r["estimates"]["shown"] > 0
    documented, produced = set(documented_keys()), output_keys(r)
    assert produced - documented == set(), "keys in the --json output missing from docs/scheduling.md"
    assert documented - produced == set(), "keys documented in docs/scheduling.md that the output lacks"


def test_the_documented_keys_are_read_from_the_doc():
    """The check above can fail: the parser finds the table (a mangled doc fails it)."""
    keys = documented_keys()
    assert {"avg_jct", "policy", "workspaces.<workspace>.gpu_share", "waits.<group>.p95"} <= set(keys)
