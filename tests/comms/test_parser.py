"""The NCCL log parser and the verdict on the GPUDirect switches, on the logs of
tests/fixtures/nccl/ (written from NCCL's format strings, not recorded: see its README)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flightbase_jobqueue import comms

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nccl"


def logs(name: str) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((FIXTURES / name).glob("*.log"))}


def record(name: str, **kw) -> dict:
    defaults = {"p2p": False, "rdma": False, "gpu_kind": "gpu", "gpus": 2, "hosts": 1}
    return comms.record_for(logs(name), **{**defaults, **kw})


@pytest.mark.parametrize("name, summary, network, intra", [
    ("p2p_nvlink", {"P2P/NVLink": 4}, "Socket", "NVL"),
    ("p2p_pcie", {"P2P/PCIe": 4}, "Socket", "PIX"),
    ("shm_p2p_disabled", {"SHM": 4}, "Socket", "NVL"),
    ("shm_topology", {"SHM": 4}, "Socket", "SYS"),
    ("ib_gdrdma", {"NET/IB/GDRDMA": 8}, "IB", "LOC"),
    ("ib_no_peermem", {"NET/IB": 8}, "IB", "LOC"),
    ("socket_no_ib", {"NET/Socket": 8}, "Socket", "LOC"),
])
def test_each_channel_gets_its_transport(name, summary, network, intra):
    r = comms.parse(logs(name))
    assert r["source"] == "nccl" and r["files"] == 2 and r["ranks"] == 2
    assert r["summary"] == summary
    assert r["network"] == network
    assert r["path_intra"] == intra


def test_channel_rows_keep_what_nccl_said():
    rows = comms.parse(logs("ib_gdrdma"))["channels"]
    first = rows[0]
    assert {k: first[k] for k in ("channel", "connection", "from_rank", "to_rank", "direction", "transport",
                                  "net", "net_device", "gdrdma", "host")} == {
        "channel": 0, "connection": 0, "from_rank": 0, "to_rank": 1, "direction": "receive", "transport": "NET",
        "net": "IB", "net_device": 0, "gdrdma": True, "host": "node-2"}
    p2p = comms.parse(logs("p2p_pcie"))["channels"][0]
    assert (p2p["mechanism"], p2p["read"], p2p["link"]) == ("IPC", True, "PCIe")


def test_ring_and_tree_layout():
    r = comms.parse(logs("p2p_nvlink"))
    assert r["rings"] == {"0": [0, 1], "1": [0, 1]}
    assert r["trees"]["0"] == {"0": {"children": [1], "parent": -1}, "1": {"children": [], "parent": 0}}
    assert r["hosts"] == {"0": "gpu-a", "1": "gpu-a"}
    assert r["nccl_version"] == "2.21.5+cuda12.4"


def test_network_details():
    r = comms.parse(logs("ib_gdrdma"))
    assert r["ib_devices"] == ["mlx5_0:1/IB", "mlx5_1:1/IB"]
    assert r["env"]["NCCL_NET_GDR_LEVEL"] == "PHB"
    r = comms.parse(logs("ib_no_peermem"))
    assert r["gdr_disabled"] == {"mlx5_0": "no module"}
    assert comms.parse(logs("socket_no_ib"))["ib_missing"] is True


@pytest.mark.parametrize("name, ask, used, reason", [
    ("p2p_nvlink", {"p2p": True}, {"p2p": True, "rdma": None}, None),
    ("p2p_pcie", {"p2p": True}, {"p2p": True, "rdma": None}, None),
    ("shm_p2p_disabled", {"p2p": True}, {"p2p": False, "rdma": None}, "NCCL_P2P_DISABLE=1"),
    ("shm_topology", {"p2p": True}, {"p2p": False, "rdma": None}, "disabled by the topology"),
    ("ib_gdrdma", {"rdma": True, "gpus": 2, "hosts": 2}, {"p2p": None, "rdma": True}, None),
    ("ib_no_peermem", {"rdma": True, "gpus": 2, "hosts": 2}, {"p2p": None, "rdma": False}, "no nvidia-peermem"),
    ("socket_no_ib", {"rdma": True, "gpus": 2, "hosts": 2}, {"p2p": None, "rdma": False},
     "no InfiniBand device in the container"),
])
def test_verdict_on_the_switches(name, ask, used, reason):
    r = record(name, **ask)
    assert r["used"] == used
    if reason is None:
        assert r["flags"] == []
    else:
        (flag,) = r["flags"]
        assert flag["feature"] == ("p2p" if ask.get("p2p") else "rdma")
        assert reason in flag["reason"]


def test_nothing_asked_nothing_flagged():
    assert record("shm_p2p_disabled")["flags"] == []
    assert record("socket_no_ib", hosts=2)["flags"] == []


def test_rdma_asked_on_one_node_is_a_note_not_a_flag():
    r = record("p2p_nvlink", rdma=True)
    assert r["flags"] == [] and any("one node" in n for n in r["notes"])


def test_p2p_asked_on_cpu_slots_is_flagged_no_gpus():
    r = comms.record_for({}, p2p=True, rdma=True, gpu_kind="cpu-slot", gpus=2, hosts=1)
    assert r["source"] == "none"
    assert r["used"] == {"p2p": False, "rdma": False}
    assert [f["feature"] for f in r["flags"]] == ["p2p", "rdma"]
    assert all(f["reason"].startswith("no GPUs") for f in r["flags"])


def test_a_job_without_nccl_logs_is_not_flagged_but_noted():
    r = comms.record_for({}, p2p=True, rdma=False, gpu_kind="gpu", gpus=2, hosts=1, state="succeeded")
    assert r["flags"] == [] and r["used"]["p2p"] is None and "no NCCL log" in r["notes"][0]


def test_garbage_and_other_lines_are_skipped():
    text = "hello\nNCCL INFO Channel 00/0 : x -> y via P2P\n\x00\xff junk\nnode:1:2 [0] NCCL WARN Call to ibv_open failed\n"
    r = comms.parse({"a.log": text})
    assert r["source"] == "none" and r["channels"] == [] and r["warnings"] == ["Call to ibv_open failed"]


def test_lines_without_the_prefix_parse_too():
    r = comms.parse(["NCCL INFO Channel 00/0 : 0[0] -> 1[1] via P2P/direct pointer/read",
                     "NCCL INFO Channel 00/0 : 0[0] -> 1[0] [send] via NET/IB/0(1)/GDRDMA(PCI)/Shared"])
    assert [comms.label(c) for c in r["channels"]] == ["P2P/unknown link", "NET/IB/GDRDMA"]
    assert r["channels"][0]["mechanism"] == "direct pointer" and r["channels"][1]["pxn"] is True


@pytest.mark.parametrize("user, expected", [
    ({}, {"NCCL_DEBUG": "INFO", "NCCL_DEBUG_SUBSYS": "GRAPH,INIT,NET"}),
    ({"NCCL_DEBUG": "WARN"}, {"NCCL_DEBUG": "INFO", "NCCL_DEBUG_SUBSYS": "GRAPH,INIT,NET"}),
    ({"NCCL_DEBUG": "trace", "NCCL_DEBUG_SUBSYS": "COLL"}, {"NCCL_DEBUG": "TRACE", "NCCL_DEBUG_SUBSYS": "COLL,GRAPH,INIT,NET"}),
    ({"NCCL_DEBUG_SUBSYS": "ALL"}, {"NCCL_DEBUG": "INFO", "NCCL_DEBUG_SUBSYS": "ALL"}),
])
def test_environment_keeps_what_the_job_asked_for_and_owns_the_file(user, expected):
    env = comms.nccl_environment("/flightbase/nccl/", user)
    assert env == {**expected, "NCCL_DEBUG_FILE": "/flightbase/nccl/%h.%p.log"}


@pytest.mark.parametrize("hw, world, comm, busbw, basis", [
    ({"backend": "gloo", "device": "CPU"}, 2, None, None, "gloo on CPU slots"),
    ({"backend": "nccl", "device": "NVIDIA H200", "nvlink_links": 18}, 8, None, 360.0, "NVLink 4"),
    ({"backend": "nccl", "device": "NVIDIA A100-SXM4-80GB"}, 2, {"path_intra": "NVL"}, 230.0, "NVLink 3"),
    ({"backend": "nccl", "device": "NVIDIA L40S", "pcie_gen": 4, "pcie_width": 16}, 2, {"summary": {"SHM": 4}}, 20.0,
     "PCIe gen 4 x16"),
    ({"backend": "nccl", "device": "NVIDIA H100"}, 2, {"summary": {"NET/IB/GDRDMA": 8}}, None, "between nodes"),
    ({"backend": "nccl", "device": "NVIDIA H100", "nvlink_links": 18}, 1, None, None, "one rank"),
    ({"backend": "nccl", "device": "Some GPU"}, 2, None, None, "no reference figure"),
])
def test_expected_bus_bandwidth(hw, world, comm, busbw, basis):
    from flightbase.cli_comms import expected

    got = expected(hw, world, comm)
    assert got["busbw_gbps"] == busbw and basis in got["basis"]


def test_the_benchmarks_result_line_is_found_in_rank_tagged_output():
    from flightbase.cli_comms import result_of

    log = 'hello\n[default0]:FLIGHTBASE_ALLREDUCE {"world_size": 2, "results": []}\n[default1]:bye\n'
    assert result_of(log) == {"world_size": 2, "results": []}
    assert result_of("FLIGHTBASE_ALLREDUCE {broken\n") is None


def test_older_nccl_forms():
    """NCCL 2.4-2.6 named a ring's order and its connections "Ring" rather than "Channel"."""
    r = comms.parse(["host:1:2 [0] NCCL INFO Ring 00 : 0 1 2 3",
                     "host:1:2 [0] NCCL INFO Ring 00 : 0[0] -> 1[1] via P2P/IPC",
                     "host:1:2 [0] NCCL INFO Trees [0] 1/-1/-1->0->-1|-1->0->1/-1/-1"])
    assert r["rings"] == {"0": [0, 1, 2, 3]} and r["ranks"] == 4
    assert r["channels"][0]["transport"] == "P2P" and r["channels"][0]["mechanism"] == "IPC"
    assert r["trees"] == {"0": {"0": {"children": [1], "parent": -1}}}
