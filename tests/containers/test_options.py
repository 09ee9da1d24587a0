"""The docker backend's container options, as pure functions of a job (no engine needed)."""

from __future__ import annotations

import pytest

from flightbase_jobqueue.backends.docker import GB, container_options, cpuset
from flightbase_jobqueue.backends.spec import LaunchSpec

SPEC = LaunchSpec(job_id="j1", training_id="t1", workspace="vision", user="ann", launcher="horovod",
                  entrypoint="train.py")


def options(**kw):
    base = dict(job_id="j1", restarts=0, uid=1001, gid=1001, groups=[2001], gpus=[0, 1], gpu_kind="cpu-slot", cores=2,
                memory_gb_per_gpu=2, mounts={"/code": ("/data/code/c1", True), "/workspace": ("/data/jobs/j1/work", False)},
                command=["python3", "-u", "train.py"], env={"A": "1"})
    base.update(kw)
    return container_options(SPEC, **base)


@pytest.mark.parametrize("slots, cores, expected", [
    ([0], 2, "0"), ([1], 2, "1"), ([0, 1], 2, "0,1"), ([2, 3], 2, "0,1"), ([4], 2, "0"), ([0, 2], 2, "0"), ([5, 1], 8, "1,5"),
])
def test_cpu_slots_pin_their_cores(slots, cores, expected):
    assert cpuset(slots, cores) == expected


def test_a_job_runs_as_its_person_with_nothing_more():
    o = options()
    assert o["user"] == "1001:1001" and o["group_add"] == ["2001"]
    assert o["cap_drop"] == ["ALL"] and o["security_opt"] == ["no-new-privileges"] and o["pids_limit"] == 4096
    assert o["init"] is True and o["network_mode"] == "host" and o["working_dir"] == "/code"
    assert "privileged" not in o and "cap_add" not in o


def test_memory_is_the_workspace_setting_times_the_gpus_held_with_no_swap():
    assert options(gpus=[0, 1], memory_gb_per_gpu=2)["mem_limit"] == 4 * GB
    assert options(gpus=[0], memory_gb_per_gpu=1.5)["memswap_limit"] == int(1.5 * GB)
    assert options(gpus=[], memory_gb_per_gpu=3)["mem_limit"] == 3 * GB  # no GPU counts as one


def test_gpus_are_device_requests_and_cpu_slots_are_cores():
    gpu = options(gpu_kind="gpu", gpus=[2, 3])
    assert [r["DeviceIDs"] for r in gpu["device_requests"]] == [["2", "3"]] and "cpuset_cpus" not in gpu
    assert gpu["device_requests"][0]["Capabilities"] == [["gpu"]]
    slots = options(gpu_kind="cpu-slot", gpus=[1])
    assert slots["cpuset_cpus"] == "1" and "device_requests" not in slots


def test_mounts_are_bind_mounts_read_only_where_asked():
    mounts = {m["Target"]: (m["Source"], m["ReadOnly"]) for m in options()["mounts"]}
    assert mounts == {"/code": ("/data/code/c1", True), "/workspace": ("/data/jobs/j1/work", False)}
    assert all(m["Type"] == "bind" for m in options()["mounts"])


def test_labels_name_the_job_and_each_run_has_its_own_container():
    o = options(restarts=2)
    assert o["labels"] == {"flightbase.job": "j1", "flightbase.workspace": "vision", "flightbase.training": "t1",
                           "flightbase.user": "ann", "flightbase.rank": "0", "flightbase.run": "2"}
    assert o["name"] == "flightbase-job-j1-2"
