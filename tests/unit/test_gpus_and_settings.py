from pathlib import Path

import pytest

from flightbase_server import gpus
from flightbase_server.settings import PlatformSettings

TWO = [{"index": 0, "kind": "gpu", "name": "H200", "memory_bytes": 1}, {"index": 1, "kind": "gpu", "name": "H200", "memory_bytes": 1}]


@pytest.mark.parametrize(
    ("spec", "found", "kinds"),
    [
        ("auto", [], ["cpu-slot"] * gpus.DEFAULT_CPU_SLOTS),
        ("auto", TWO, ["gpu", "gpu"]),
        ("3", [], ["cpu-slot"] * 3),
        ("1", TWO, ["gpu"]),
        ("0", [], []),
    ],
)
def test_inventory(spec, found, kinds):
    assert [g["kind"] for g in gpus.inventory(spec, found)] == kinds


@pytest.mark.parametrize(("spec", "found", "words"), [("many", [], "whole number"), ("-1", [], "negative"), ("3", TWO, "has 2 GPUs")])
def test_inventory_errors(spec, found, words):
    with pytest.raises(ValueError, match=words):
        gpus.inventory(spec, found)


def test_settings_env_round_trip():
    s = PlatformSettings(data_dir=Path("/tmp/x"), port=9000, gpus=tuple(gpus.cpu_slots(2)), scheduler_policy="fifo")
    assert PlatformSettings.from_env(s.to_env()) == s


def test_settings_need_a_data_dir():
    with pytest.raises(RuntimeError, match="FLIGHTBASE_DATA_DIR"):
        PlatformSettings.from_env({})
