"""The docker spawner's container options, as pure functions of a server's lease, settings and account
(no engine, no hub needed)."""

from __future__ import annotations

import pytest

from flightbase_spawner.containers import (GB, ImageRefused, ImageSource, NotebookContainer, container_environment,
                                           cpuset, image_source, spawn_overrides)
from flightbase_spawner.options import JupyterOptions

LEASE = {"id": "L1", "state": "granted", "gpu_kind": "cpu-slot", "gpus": [3],
         "datasets": [{"name": "dogs", "version": 1, "path": "/data/datasets/vision/dogs/1"},
                      {"name": "cats", "version": 2, "path": "/data/datasets/vision/cats/2"}]}


def container(**kw) -> NotebookContainer:
    base = dict(user="ann", server="exp", workspace="vision", image="notebook", reference="flightbase/notebook:0.1.0",
                uid=1001, gid=1001, groups=[2001], home="/data/home/ann", memory_gb_per_gpu=2, cores=2, lease=LEASE)
    base.update(kw)
    return NotebookContainer(**base)


def test_overrides_literal():
    assert spawn_overrides(container()) == {
        "image": "flightbase/notebook:0.1.0",
        "allowed_images": {"notebook": "flightbase/notebook:0.1.0"},
        "notebook_dir": "/home/ann/vision",
        "mounts": [
            {"type": "bind", "source": "/data/home/ann", "target": "/home/ann", "read_only": False},
            {"type": "bind", "source": "/data/datasets/vision/cats/2", "target": "/datasets/cats", "read_only": True},
            {"type": "bind", "source": "/data/datasets/vision/dogs/1", "target": "/datasets/dogs", "read_only": True},
        ],
        "mem_limit": 2 * GB,
        "extra_create_kwargs": {
            "user": "1001:1001",
            "labels": {"flightbase.user": "ann", "flightbase.server": "exp", "flightbase.workspace": "vision",
                       "flightbase.lease": "L1"},
            "working_dir": "/home/ann/vision",
        },
        "extra_host_config": {
            "group_add": ["2001"],
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "pids_limit": 4096,
            "memswap_limit": 2 * GB,
            "shm_size": 1 * GB,
            "ulimits": [{"Name": "core", "Soft": 0, "Hard": 0}],
            "init": True,
            "network_mode": "host",
            "auto_remove": False,
            "cpuset_cpus": "1",
        },
    }


@pytest.mark.parametrize("lease, gpu_options", [
    ({"id": "L", "gpu_kind": "gpu", "gpus": [5]},
     {"device_requests": [{"Driver": "", "Count": 0, "DeviceIDs": ["5"], "Capabilities": [["gpu"]], "Options": {}}]}),
    ({"id": "L", "gpu_kind": "cpu-slot", "gpus": [0]}, {"cpuset_cpus": "0"}),
    ({"id": "L", "gpu_kind": "cpu-slot", "gpus": [5]}, {"cpuset_cpus": "1"}),
    (None, {}),  # a server without GPU: no device, no pinning
])
def test_exactly_its_gpu_a_device_request_or_the_core_of_its_slot(lease, gpu_options):
    host = spawn_overrides(container(lease=lease))["extra_host_config"]
    assert {k: v for k, v in host.items() if k in ("device_requests", "cpuset_cpus")} == gpu_options


@pytest.mark.parametrize("setting, lease, expected", [
    (8, LEASE, 8 * GB),
    (1.5, LEASE, int(1.5 * GB)),
    (3, None, 3 * GB),  # a notebook without GPU counts as one
])
def test_memory_is_the_workspace_setting_per_gpu_with_no_swap(setting, lease, expected):
    o = spawn_overrides(container(memory_gb_per_gpu=setting, lease=lease))
    assert o["mem_limit"] == expected and o["extra_host_config"]["memswap_limit"] == expected
    assert o["extra_host_config"]["shm_size"] == min(GB, expected // 2)


def test_a_server_without_lease_has_no_lease_label_and_no_dataset_mounts():
    o = spawn_overrides(container(lease=None, groups=[]))
    assert o["extra_create_kwargs"]["labels"] == {"flightbase.user": "ann", "flightbase.server": "exp",
                                                  "flightbase.workspace": "vision"}
    assert [m["target"] for m in o["mounts"]] == ["/home/ann"]
    assert o["extra_host_config"]["group_add"] == []


@pytest.mark.parametrize("slots, cores, expected", [([0], 2, "0"), ([3], 2, "1"), ([2, 3], 2, "0,1"), ([9], 8, "1")])
def test_slot_i_runs_on_core_i_mod_cores(slots, cores, expected):
    assert cpuset(slots, cores) == expected


def test_environment_seen_from_inside_the_container():
    opts = JupyterOptions(workspace="vision", image="notebook", gpus=1, datasets=("cats", "dogs"))
    assert container_environment(container(), opts, public_url="http://127.0.0.1:8000") == {
        "FLIGHTBASE_WORKSPACE": "vision", "FLIGHTBASE_URL": "http://127.0.0.1:8000", "FLIGHTBASE_IMAGE": "notebook",
        "FLIGHTBASE_NUM_GPUS": "1", "CUDA_VISIBLE_DEVICES": "", "FLIGHTBASE_LEASE_ID": "L1",
        "FLIGHTBASE_GPU_KIND": "cpu-slot", "FLIGHTBASE_CPU_SLOTS": "3", "FLIGHTBASE_DATASETS_DIR": "/datasets",
        "NVIDIA_VISIBLE_DEVICES": "void", "HOME": "/home/ann", "USER": "ann", "LOGNAME": "ann",
    }
    gpu = container_environment(container(lease={"id": "L2", "gpu_kind": "gpu", "gpus": [6]}),
                                JupyterOptions(workspace="vision"), public_url="u")
    # the engine hands the container GPU 6 alone, which CUDA there numbers 0
    assert gpu["CUDA_VISIBLE_DEVICES"] == "0" and gpu["NVIDIA_VISIBLE_DEVICES"] == "6"
    assert "FLIGHTBASE_DATASETS_DIR" not in gpu and "FLIGHTBASE_CPU_SLOTS" not in gpu
    none = container_environment(container(lease=None), JupyterOptions(workspace="vision", gpus=0), public_url="u")
    assert none["NVIDIA_VISIBLE_DEVICES"] == "void" and none["FLIGHTBASE_NUM_GPUS"] == "0"
    assert "FLIGHTBASE_LEASE_ID" not in none


@pytest.mark.parametrize("reference, expected", [
    ("flightbase/notebook:0.1.0", ImageSource("flightbase/notebook", "0.1.0", "", False)),
    ("notebook", ImageSource("notebook", "latest", "", False)),
    ("127.0.0.1:5000/vision/mine:v2", ImageSource("127.0.0.1:5000/vision/mine", "v2", "127.0.0.1:5000", True)),
    ("127.0.0.1:5000/vision/mine", ImageSource("127.0.0.1:5000/vision/mine", "latest", "127.0.0.1:5000", True)),
    ("127.0.0.1:5000/vision/mine@sha256:ab", ImageSource("127.0.0.1:5000/vision/mine", "sha256:ab", "127.0.0.1:5000", True)),
    ("127.0.0.1:5000/vision/mine:v2@sha256:cd", ImageSource("127.0.0.1:5000/vision/mine", "sha256:cd", "127.0.0.1:5000", True)),
    ("registry.example.com/team/img:1", ImageSource("registry.example.com/team/img", "1", "registry.example.com", False)),
    ("localhost/x", ImageSource("localhost/x", "latest", "localhost", False)),
])
def test_where_an_image_comes_from(reference, expected):
    assert image_source(reference, "vision", "127.0.0.1:5000") == expected


@pytest.mark.parametrize("reference, why", [
    ("127.0.0.1:5000/other/theirs:1", "is not one of workspace 'vision'"),
    ("127.0.0.1:5000/visionary/x:1", "is not one of workspace 'vision'"),
    ("has space", "is not an image reference"),
    ("", "is not an image reference"),
])
def test_the_platform_registry_gives_a_server_its_own_workspaces_images_only(reference, why):
    with pytest.raises(ImageRefused, match=why):
        image_source(reference, "vision", "127.0.0.1:5000")
