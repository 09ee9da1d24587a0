"""A job's GPU communication, as NCCL reported it: which transport each channel used, the ring
and tree layout, the network, and whether the GPUDirect features the job asked for were used.

Every job runs with NCCL's initialisation logging on (``NCCL_DEBUG=INFO``,
``NCCL_DEBUG_SUBSYS=INIT,GRAPH,NET``), written by each rank to a file of its own
(``NCCL_DEBUG_FILE=<folder>/%h.%p.log``) in a folder the platform made for the
run, apart from the job's ``output.log`` (:func:`nccl_environment`; the
backends read the files back, bounded and without following links:
``JobFiles.nccl_logs``). :func:`parse` turns those lines into a record and
:func:`verdict` compares it with the job's switches (``gpudirect_p2p``,
``gpudirect_rdma``). Both are pure: the API calls them when a job's details are
read, nothing is stored.

The lines parsed, with the NCCL source that prints them (``NVIDIA/nccl``,
2.18-2.23; every line is prefixed ``host:pid:tid [cudaDev] NCCL INFO``)::

    Channel %02d/%01d : %d[%d] -> %d[%d] via P2P/IPC%s%s          src/transport/p2p.cc (also P2P/CUMEM,
                                                                  P2P/MNNVL, P2P/direct pointer, P2P/indirect)
    Channel %02d : %d[%d] -> %d[%d] via SHM/%s/%s                 src/transport/shm.cc
    Channel %02d/%d : %d[%d] -> %d[%d] [send] via NET/%s/%d%s%s%s src/transport/net.cc (/GDRDMA, (PCI), /Shared;
                                                                  NET/%s/%d(%d) when proxied through a rank: PXN)
    Ring %02d : %d -> %d -> %d                                    src/init.cc (prev -> this rank -> next)
    Ring %02d : 0 1 2 3, Ring %02d : %d[%d] -> %d[%d] via ...      NCCL 2.4-2.6 (the ring's order; a connection)
    Trees [%d] %d/%d/%d->%d->%d ...                               src/init.cc (three children -> rank -> parent)
    Channel %02d/%02d : %s                                        src/graph/connect.cc (a ring's rank order)
    Pattern %d, crossNic %d, nChannels %d, bw %f/%f, type %s/%s, sameChannels %d
                                                                  src/graph/search.cc (path types: NVL, PIX, ...)
    Using network %s                                              src/init.cc (IB, Socket, a plugin's name)
    NET/IB : Using [0]mlx5_0:1/IB ... ; OOB ib0:10.0.0.1<0>       src/transport/net_ib.cc
    NET/IB : No device found.                                     src/transport/net_ib.cc
    NET/IB : GPU Direct RDMA Disabled for HCA %d '%s' (no module) src/transport/net_ib.cc
    %s set by environment to %s.                                  src/misc/param.cc (NCCL_P2P_DISABLE, ...)
    comm %p rank %d nranks %d cudaDev %d ... - Init COMPLETE      src/init.cc
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping

# -- the lines ----------------------------------------------------------------------------------

_PREFIX = re.compile(r"^(?:(?P<host>[^\s:]+):(?P<pid>\d+):(?P<tid>\d+) \[(?P<dev>\d+)\] )?NCCL (?P<level>INFO|WARN) (?P<msg>.*)$")
_CHANNEL = re.compile(r"^(?:Channel|Ring) (?P<ch>\d+)(?:/(?P<conn>\d+))? : (?P<src>\d+)\[(?P<srcdev>[0-9a-fA-F]+)\] -> "
                      r"(?P<dst>\d+)\[(?P<dstdev>[0-9a-fA-F]+)\](?: \[(?P<dir>send|receive)\])? via (?P<via>.+?)\s*$")
_RING = re.compile(r"^Ring (?P<ch>\d+) : (?P<prev>-?\d+) -> (?P<rank>\d+) -> (?P<next>-?\d+)\s*$")
_RING_ORDER = re.compile(r"^(?:Channel (?P<ch>\d+)/(?P<n>\d+)|Ring (?P<oldch>\d+)) :(?P<ranks>(?:\s+\d+)+)\s*$")
_TREES = re.compile(r"^Trees((?: \[\d+\] \S+)*)\s*$")
_TREE = re.compile(r"\[(?P<ch>\d+)\] (?P<d0>-?\d+)/(?P<d1>-?\d+)/(?P<d2>-?\d+)->(?P<rank>\d+)->(?P<up>-?\d+)")
_PATTERN = re.compile(r"^Pattern (?P<pattern>\d+), crossNic (?P<cross>\d+), nChannels (?P<n>\d+), "
                      r"bw (?P<bwintra>[\d.]+)/(?P<bwinter>[\d.]+), type (?P<intra>\w+)/(?P<inter>\w+)")
_NETWORK = re.compile(r"^Using network (?P<name>.+?)\s*$")
_IB_USING = re.compile(r"^NET/IB : Using(?P<devs>(?: \[\d+\]\S+)+)")
_IB_DEV = re.compile(r"\[\d+\](?P<dev>\S+)")
_NO_IB = re.compile(r"^NET/IB : No device found")
_GDR_OFF = re.compile(r"^NET/\S+ : GPU Direct RDMA Disabled for HCA (?P<hca>\d+) '(?P<name>[^']*)'(?: \((?P<why>[^)]*)\))?")
_GDR_ON = re.compile(r"^NET/\S+ : GPU Direct RDMA (?:\([^)]*\) )?[Ee]nabled for HCA (?P<hca>\d+) '(?P<name>[^']*)'")
_ENV = re.compile(r"^(?P<name>NCCL_[A-Z0-9_]+) set by environment to (?P<value>.*?)\.?\s*$")
_INIT = re.compile(r"^comm \S+ rank (?P<rank>\d+) nranks (?P<nranks>\d+) cudaDev (?P<cuda>\d+)")
_VERSION = re.compile(r"^NCCL version (?P<version>\S+)")

# NCCL's path types (src/graph/topo.h, topoPathTypeStr): how two GPUs of a node reach each other.
NVLINK_PATHS = {"NVL", "NVB"}  # NVLink, directly or through one GPU
PCIE_PATHS = {"PIX": "one PCIe switch", "PXB": "several PCIe switches", "PXN": "a PCIe switch and NVLink",
              "P2C": "PCIe to the CPU", "PHB": "the PCIe host bridge (CPU)", "SYS": "the CPUs' interconnect (QPI/UPI)"}
RING_PATTERN = 4  # NCCL_TOPO_PATTERN_RING


def _transport(via: str) -> dict:
    """What ``via ...`` says: the transport and its details."""
    parts = via.split("/")
    kind = parts[0]
    out: dict = {"transport": kind if kind in ("P2P", "SHM", "NET", "CollNet") else "other", "via": via}
    if kind == "P2P":
        out["mechanism"] = parts[1] if len(parts) > 1 else ""
        out["read"] = "/read" in via
        out["copy_engine"] = via.endswith("/CE")
    elif kind == "NET":
        m = re.match(r"^NET/(?P<name>.+?)/(?P<dev>\d+)(?:\((?P<proxy>\d+)\))?(?P<rest>.*)$", via)
        if m:
            out.update(net=m["name"], net_device=int(m["dev"]), gdrdma="/GDRDMA" in m["rest"],
                       pxn=m["proxy"] is not None)
        else:
            out.update(net=parts[1] if len(parts) > 1 else "", gdrdma="GDRDMA" in via, pxn=False)
    return out


def parse(logs: Mapping[str, str] | Iterable[str]) -> dict:
    """The record of what NCCL did, from each rank's log (``{file name: text}``) or from lines.

    Unknown lines are skipped: a log of another NCCL version gives a thinner
    record, never an error."""
    texts = logs.values() if isinstance(logs, Mapping) else ["\n".join(logs)]
    channels: dict[tuple, dict] = {}
    rings: dict[int, dict[int, list[int]]] = {}
    ring_orders: dict[int, list[int]] = {}
    trees: dict[int, dict[int, dict]] = {}
    patterns: list[dict] = []
    hosts: dict[int, str] = {}
    networks: set[str] = set()
    ib_devices: list[str] = []
    gdr_off: dict[str, str] = {}
    gdr_on: set[str] = set()
    env: dict[str, str] = {}
    warnings: list[str] = []
    no_ib = False
    nranks = 0
    version = None
    files = 0
    for text in texts:
        files += 1
        for raw in text.splitlines():
            m = _PREFIX.match(raw.strip())
            if not m:
                continue
            msg, host = m["msg"], m["host"]
            if m["level"] == "WARN":
                if len(warnings) < 20:
                    warnings.append(msg[:300])
                continue
            if c := _CHANNEL.match(msg):
                key = (host, m["pid"], int(c["ch"]), int(c["conn"] or 0), int(c["src"]), int(c["dst"]), c["dir"])
                channels[key] = {"channel": int(c["ch"]), "connection": int(c["conn"] or 0),
                                 "from_rank": int(c["src"]), "to_rank": int(c["dst"]), "direction": c["dir"],
                                 "host": host, **_transport(c["via"])}
                if host is not None:
                    hosts.setdefault(int(c["src"]), host)
            elif r := _RING.match(msg):
                rings.setdefault(int(r["ch"]), {})[int(r["rank"])] = [int(r["prev"]), int(r["next"])]
                if host is not None:
                    hosts.setdefault(int(r["rank"]), host)
            elif o := _RING_ORDER.match(msg):
                ch = int(o["ch"] if o["ch"] is not None else o["oldch"])
                ring_orders[ch] = [int(x) for x in o["ranks"].split()]
                nranks = max(nranks, len(ring_orders[ch]))
            elif t := _TREES.match(msg):
                for node in _TREE.finditer(t.group(1)):
                    trees.setdefault(int(node["ch"]), {})[int(node["rank"])] = {
                        "children": [int(node[k]) for k in ("d0", "d1", "d2") if int(node[k]) >= 0],
                        "parent": int(node["up"])}
            elif p := _PATTERN.match(msg):
                patterns.append({"pattern": int(p["pattern"]), "channels": int(p["n"]),
                                 "bw_intra": float(p["bwintra"]), "bw_inter": float(p["bwinter"]),
                                 "type_intra": p["intra"], "type_inter": p["inter"]})
            elif n := _NETWORK.match(msg):
                networks.add(n["name"])
            elif ib := _IB_USING.match(msg):
                for d in _IB_DEV.finditer(ib["devs"]):
                    if d["dev"] not in ib_devices:
                        ib_devices.append(d["dev"])
            elif _NO_IB.match(msg):
                no_ib = True
            elif g := _GDR_OFF.match(msg):
                gdr_off[g["name"]] = g["why"] or ""
            elif g := _GDR_ON.match(msg):
                gdr_on.add(g["name"])
            elif e := _ENV.match(msg):
                env[e["name"]] = e["value"]
            elif i := _INIT.match(msg):
                nranks = max(nranks, int(i["nranks"]))
                if host is not None:
                    hosts.setdefault(int(i["rank"]), host)
            elif v := _VERSION.match(msg):
                version = v["version"]

    ring = next((p for p in patterns if p["pattern"] == RING_PATTERN), patterns[0] if patterns else None)
    intra = ring["type_intra"] if ring else None
    link = "NVLink" if intra in NVLINK_PATHS else ("PCIe" if intra in PCIE_PATHS else None)
    rows = sorted(channels.values(), key=lambda c: (c["channel"], c["connection"], c["from_rank"], c["to_rank"],
                                                     c["direction"] or ""))
    for row in rows:
        if row["transport"] == "P2P":
            row["link"] = "NVLink" if row.get("mechanism") == "MNNVL" else link
    layout_rings = {ch: ring_orders.get(ch) or _ring_from_neighbours(neigh) for ch, neigh in rings.items()}
    for ch, order in ring_orders.items():
        layout_rings.setdefault(ch, order)
    nranks = max([nranks, len(hosts)] + [len(v) for v in rings.values()])
    return {
        "source": "nccl" if files and (rows or rings or networks or patterns) else "none",
        "files": files,
        "nccl_version": version,
        "ranks": nranks,
        "hosts": {str(r): h for r, h in sorted(hosts.items())},
        "network": sorted(networks)[0] if len(networks) == 1 else (sorted(networks) or None),
        "ib_devices": ib_devices,
        "ib_missing": no_ib,
        "gdr_disabled": gdr_off,
        "gdr_enabled": sorted(gdr_on),
        "env": env,
        "path_intra": intra,
        "path_inter": ring["type_inter"] if ring else None,
        "channels": rows,
        "summary": summarise(rows),
        "rings": {str(ch): order for ch, order in sorted(layout_rings.items())},
        "trees": {str(ch): {str(r): node for r, node in sorted(by_rank.items())} for ch, by_rank in sorted(trees.items())},
        "warnings": warnings,
    }


def _ring_from_neighbours(neighbours: dict[int, list[int]]) -> list[int]:
    """A ring's rank order from each rank's ``prev -> rank -> next`` (as far as the logs go)."""
    if not neighbours:
        return []
    start = min(neighbours)
    order, rank = [start], neighbours[start][1]
    while rank != start and rank in neighbours and len(order) <= len(neighbours):
        order.append(rank)
        rank = neighbours[rank][1]
    return order


def label(row: dict) -> str:
    """A channel's transport in a word or two: ``P2P/NVLink``, ``SHM``, ``NET/IB/GDRDMA``, ``NET/Socket``."""
    kind = row["transport"]
    if kind == "P2P":
        return f"P2P/{row.get('link') or 'unknown link'}"
    if kind == "NET":
        return f"NET/{row.get('net', '')}" + ("/GDRDMA" if row.get("gdrdma") else "")
    return kind


def summarise(rows: list[dict]) -> dict[str, int]:
    """How many channel connections went over each transport (:func:`label`)."""
    out: dict[str, int] = {}
    for row in rows:
        out[label(row)] = out.get(label(row), 0) + 1
    return dict(sorted(out.items()))


# -- the verdict --------------------------------------------------------------------------------

def verdict(record: dict, *, p2p: bool, rdma: bool, gpu_kind: str, gpus: int, hosts: int, state: str = "") -> dict:
    """Whether the GPUDirect features the job asked for were used, and why not.

    ``used``: True, False, or None when it cannot be told (no NCCL traffic of
    that kind: one GPU, one node, or the job has not initialised NCCL yet).
    ``flags``: one per feature asked for and not used, with the likely reason.
    """
    requested = {"p2p": bool(p2p), "rdma": bool(rdma)}
    used: dict[str, bool | None] = {"p2p": None, "rdma": None}
    flags: list[dict] = []
    notes: list[str] = []

    def flag(feature: str, reason: str) -> None:
        flags.append({"feature": feature, "reason": reason})

    if gpu_kind != "gpu":
        for feature in ("p2p", "rdma"):
            if requested[feature]:
                used[feature] = False
                flag(feature, "no GPUs: the job ran on CPU slots, where NCCL and GPUDirect do not run")
        return {"requested": requested, "used": used, "flags": flags, "notes": notes}

    rows = record.get("channels") or []
    if record.get("source") != "nccl":
        if requested["p2p"] or requested["rdma"]:
            notes.append("no NCCL log yet: the job has not initialised NCCL (or does not use it)"
                         if state in ("queued", "starting", "running") else
                         "no NCCL log: the job did not initialise NCCL (it does not use it, or ended first)")
        return {"requested": requested, "used": used, "flags": flags, "notes": notes}

    env = record.get("env") or {}
    local = [r for r in rows if r["transport"] in ("P2P", "SHM")]
    p2p_rows = [r for r in rows if r["transport"] == "P2P"]
    shm_rows = [r for r in rows if r["transport"] == "SHM"]
    net_rows = [r for r in rows if r["transport"] == "NET"]
    if local:
        used["p2p"] = bool(p2p_rows) and not shm_rows
    if requested["p2p"]:
        if gpus <= hosts:
            notes.append("one GPU per node: P2P has no peer inside a node")
        elif shm_rows or (not p2p_rows and local):
            flag("p2p", _why_not_p2p(record, env))
        elif not local and net_rows:
            flag("p2p", "the GPUs of a node talked through the network, not P2P: " + _why_not_p2p(record, env))
    if net_rows:
        used["rdma"] = all(r.get("net") == "IB" and r.get("gdrdma") for r in net_rows)
    if requested["rdma"]:
        if not net_rows:
            if hosts <= 1:
                notes.append("one node: GPUDirect RDMA is for traffic between nodes")
        elif not used["rdma"]:
            flag("rdma", _why_not_rdma(record, net_rows, env))
    return {"requested": requested, "used": used, "flags": flags, "notes": notes}


def _why_not_p2p(record: dict, env: Mapping[str, str]) -> str:
    if env.get("NCCL_P2P_DISABLE", "0") not in ("0", ""):
        return f"P2P disabled by NCCL_P2P_DISABLE={env['NCCL_P2P_DISABLE']} in the job's environment"
    if env.get("NCCL_P2P_LEVEL"):
        return f"P2P limited by NCCL_P2P_LEVEL={env['NCCL_P2P_LEVEL']} in the job's environment"
    path = record.get("path_intra")
    if path in ("PHB", "SYS", "P2C"):
        return (f"P2P disabled by the topology: the GPUs reach each other through {PCIE_PATHS[path]} "
                f"(path {path}), where NCCL does not use P2P")
    return ("P2P not available between these GPUs: the driver refused peer access (the topology, "
            "or a container without IPC between its processes)")


def _why_not_rdma(record: dict, net_rows: list[dict], env: Mapping[str, str]) -> str:
    nets = sorted({r.get("net", "") for r in net_rows})
    if "IB" in nets:  # InfiniBand, but the card copies through host memory
        no_module = [name for name, why in (record.get("gdr_disabled") or {}).items() if "module" in why]
        if no_module:
            return (f"no nvidia-peermem: InfiniBand was used without GPUDirect RDMA because the kernel module "
                    f"that lets {', '.join(no_module)} reach GPU memory is not loaded (modprobe nvidia-peermem)")
        if env.get("NCCL_NET_GDR_LEVEL"):
            return (f"the GPU and the InfiniBand card are further apart than NCCL_NET_GDR_LEVEL="
                    f"{env['NCCL_NET_GDR_LEVEL']} allows: the data went through host memory")
        return "InfiniBand without GPUDirect RDMA: NCCL judged the GPU and the card too far apart (or GDR unsupported)"
    if env.get("NCCL_IB_DISABLE", "0") not in ("0", ""):
        return f"InfiniBand disabled by NCCL_IB_DISABLE={env['NCCL_IB_DISABLE']}: NCCL ran over {'/'.join(nets)}"
    if record.get("ib_missing") or not record.get("ib_devices"):
        return (f"no InfiniBand device in the container (NCCL: 'NET/IB : No device found'): NCCL ran over "
                f"{'/'.join(nets) or 'sockets'}; the node needs an IB card and the job its device (/dev/infiniband)")
    return f"NCCL chose {'/'.join(nets)} over InfiniBand"


def record_for(logs: Mapping[str, str], *, p2p: bool, rdma: bool, gpu_kind: str, gpus: int, hosts: int,
               state: str = "") -> dict:
    """The whole record the API shows: what NCCL did and the verdict on the switches."""
    record = parse(logs)
    record.update(verdict(record, p2p=p2p, rdma=rdma, gpu_kind=gpu_kind, gpus=gpus, hosts=hosts, state=state))
    return record


# -- the job's environment ----------------------------------------------------------------------

LOG_NAME = "%h.%p.log"  # NCCL puts the host's name and the process id in (src/debug.cc)
SUBSYSTEMS = "INIT,GRAPH,NET"


def nccl_environment(folder: str, user_env: Mapping[str, str] = {}) -> dict[str, str]:
    """The variables that make each rank log NCCL's initialisation into ``folder``.

    A job that asked for more (``NCCL_DEBUG=TRACE``, more subsystems) keeps
    what it asked for; the file is always the platform's, so that the user's
    ``output.log`` stays theirs."""
    level = user_env.get("NCCL_DEBUG", "").upper()
    subsys = user_env.get("NCCL_DEBUG_SUBSYS", "")
    wanted = set(SUBSYSTEMS.split(","))
    if subsys.upper() != "ALL":
        subsys = ",".join(sorted(wanted | {s for s in subsys.split(",") if s and not s.startswith("^")}))
    return {"NCCL_DEBUG": level if level in ("INFO", "TRACE") else "INFO",
            "NCCL_DEBUG_SUBSYS": subsys,
            "NCCL_DEBUG_FILE": f"{folder.rstrip('/')}/{LOG_NAME}"}
