"""The node inventory (flightbase_server/topology.py) and the GPU choice within a node
(scheduling/gpu_choice.py): ``nvidia-smi topo -m`` outputs of tests/fixtures/nvidia-smi/
(written from the documented format: no GPU here), an InfiniBand sysfs tree made in a
temporary folder, and table tests of the placement."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flightbase_server import topology
from flightbase_jobqueue.scheduling.gpu_choice import choose
from flightbase_jobqueue.scheduling.placement import FreeMap
from flightbase_jobqueue.scheduling.types import Job, Node

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nvidia-smi"
NV, PCIE = topology.NVLINK_LABEL, topology.PCIE_LABEL


def test_nvswitch_matrix():
    parsed = topology.parse_topo_matrix((FIXTURES / "topo_8x_nvswitch.txt").read_text())
    assert [g["index"] for g in parsed["gpus"]] == list(range(8))
    assert parsed["links"][0][0] == "X" and parsed["links"][0][7] == "NV12" and parsed["links"][6][5] == "NV12"
    assert parsed["nics"][0] == {"NIC0": "PXB", "NIC1": "SYS"}
    inv = {"links": {str(i): {str(j): w for j, w in row.items()} for i, row in parsed["links"].items()}}
    assert topology.placement_labels(inv) == {NV: "0,1,2,3,4,5,6,7"}


def test_pcie_matrix():
    parsed = topology.parse_topo_matrix((FIXTURES / "topo_4x_pcie.txt").read_text())
    assert parsed["links"][0] == {0: "X", 1: "PIX", 2: "SYS", 3: "SYS"}
    assert "nics" not in parsed
    inv = {"links": {str(i): {str(j): w for j, w in row.items()} for i, row in parsed["links"].items()}}
    assert topology.placement_labels(inv) == {PCIE: "0,1;2,3"}


def test_a_matrix_that_is_not_one_gives_nothing():
    assert topology.parse_topo_matrix("NVIDIA-SMI has failed because it couldn't communicate with the driver")["links"] == {}


@pytest.mark.parametrize("word, better_than", [("NV12", "NV4"), ("NV1", "PIX"), ("PIX", "PXB"), ("PXB", "PHB"),
                                               ("PHB", "NODE"), ("NODE", "SYS")])
def test_link_scores_order(word, better_than):
    assert topology.score(word) > topology.score(better_than)


def ib_tree(root: Path) -> None:
    for dev, port, rate, state, layer in (("mlx5_0", "1", "200 Gb/sec (4X HDR)", "4: ACTIVE", "InfiniBand"),
                                          ("mlx5_1", "1", "100 Gb/sec (2X HDR)", "1: DOWN", "Ethernet")):
        p = root / dev / "ports" / port
        p.mkdir(parents=True)
        (p / "rate").write_text(rate + "\n")
        (p / "state").write_text(state + "\n")
        (p / "link_layer").write_text(layer + "\n")


def test_infiniband_devices_and_rates(tmp_path):
    ib_tree(tmp_path)
    assert topology.infiniband(tmp_path) == [
        {"device": "mlx5_0", "ports": [{"port": 1, "rate": "200 Gb/sec (4X HDR)", "rate_gbps": 200.0,
                                         "state": "ACTIVE", "link_layer": "InfiniBand"}]},
        {"device": "mlx5_1", "ports": [{"port": 1, "rate": "100 Gb/sec (2X HDR)", "rate_gbps": 100.0,
                                         "state": "DOWN", "link_layer": "Ethernet"}]},
    ]
    assert topology.infiniband(tmp_path / "absent") == []


def test_interconnect_falls_back_from_nvml_to_nvidia_smi(tmp_path):
    """NVML and nvidia-smi are replaced by functions here (no GPU driver on this machine)."""
    ib_tree(tmp_path)
    smi = lambda: topology.parse_topo_matrix((FIXTURES / "topo_4x_pcie.txt").read_text())  # noqa: E731
    inv = topology.interconnect(nvml=lambda: None, smi=smi, ib_root=tmp_path)
    assert inv["source"] == "nvidia-smi" and inv["nvlink"] is False
    assert inv["links"]["2"]["3"] == "PIX" and [d["device"] for d in inv["infiniband"]] == ["mlx5_0", "mlx5_1"]
    none = topology.interconnect(nvml=lambda: None, smi=lambda: None, ib_root=tmp_path / "absent")
    assert none == {"source": "none", "gpus": [], "links": {}, "nvlink": False, "infiniband": []}


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="nvidia-smi is installed here")
def test_without_nvidia_smi_there_is_no_matrix():
    assert topology.smi_links() is None


def test_this_machine_without_gpus():
    inv = topology.interconnect(ib_root="/sys/class/infiniband")
    if topology.nvml_links() is None and shutil.which("nvidia-smi") is None:
        assert inv["source"] == "none" and inv["links"] == {}


@pytest.mark.parametrize("free, need, labels, expected", [
    ([0, 1, 2, 3, 4, 5, 6, 7], 2, {}, (0, 1)),
    ([1, 2, 5, 6], 2, {}, (1, 2)),  # no labels: the first free, as before
    ([1, 4, 5, 6], 2, {NV: "0,1,2,3;4,5,6,7"}, (4, 5)),  # 1 alone in its group: the other group
    ([2, 3, 4, 5, 6, 7], 2, {NV: "0,1,2,3;4,5,6,7"}, (2, 3)),  # best fit: the fuller group's last two
    ([0, 2, 3], 2, {PCIE: "0,1;2,3"}, (2, 3)),  # one PCIe switch, not across sockets
    ([0, 2, 4, 6], 2, {PCIE: "0,1;2,3;4,5;6,7"}, (0, 2)),  # no switch holds two: the first free
    ([0, 1, 2, 3, 4, 5, 6, 7], 4, {NV: "0,1,2,3;4,5,6,7", PCIE: "0,1;2,3;4,5;6,7"}, (0, 1, 2, 3)),
    ([0, 1, 2, 3], 4, {NV: "0,1;2,3"}, (0, 1, 2, 3)),  # every free GPU: nothing to choose
    ([0, 1, 2], 2, {NV: "junk;;x,1"}, (0, 1)),  # a label that says nothing usable
])
def test_gpu_choice(free, need, labels, expected):
    assert choose(free, need, labels) == expected


def test_placement_uses_the_nodes_labels():
    job = Job(id="j", workspace="w", gpus=2, submitted_at=0.0)
    plain = Node("n", 4, (0, 2, 3))
    labelled = Node("n", 4, (0, 2, 3), labels={PCIE: "0,1;2,3"})
    assert FreeMap([plain]).find(job) == {"n": (0, 2)}
    assert FreeMap([labelled]).find(job) == {"n": (2, 3)}
