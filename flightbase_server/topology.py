"""This machine's GPU interconnect: which GPUs are joined by NVLink or sit under one PCIe switch,
and its InfiniBand cards with their link rate.

- GPUs: from NVML (pynvml) where it answers, else by parsing ``nvidia-smi topo -m``; the
  result is one matrix, ``links[i][j]``, in ``nvidia-smi topo -m``'s own words: ``NV<n>``
  (n NVLinks), ``PIX`` (one PCIe switch), ``PXB`` (several switches), ``PHB`` (the host
  bridge), ``NODE`` (one NUMA node), ``SYS`` (across NUMA nodes).
- InfiniBand: ``/sys/class/infiniband/<dev>/ports/<n>/{rate,state,link_layer}``.

:func:`placement_labels` turns the matrix into GPU groups that the scheduler's placement
prefers for a multi-GPU job on one node (``scheduling/gpu_choice.py``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

# NVML's nvmlGpuTopologyLevel_t -> nvidia-smi's words
NVML_LEVELS = {0: "X", 10: "PIX", 20: "PXB", 30: "PHB", 40: "NODE", 50: "SYS"}
SCORES = {"PIX": 50, "PXB": 40, "PHB": 20, "NODE": 10, "SOC": 0, "SYS": 0}
NVLINK_LABEL = "flightbase.io/gpus-nvlink"
PCIE_LABEL = "flightbase.io/gpus-pcie-switch"
MAX_NVLINKS = 18  # NVML_NVLINK_MAX_LINKS


def score(link: str) -> int:
    """How well two GPUs are joined: NVLink above one PCIe switch above the rest."""
    m = re.fullmatch(r"NV(\d+)", link or "")
    if m:
        return 100 + int(m[1])
    return SCORES.get(link, 0)


def nvml_links() -> dict | None:
    """``{"gpus": [...], "links": {i: {j: word}}}`` from NVML, or None without NVML or GPUs."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return None
    try:
        count = pynvml.nvmlDeviceGetCount()
        if not count:
            return None
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        bus = []
        gpus = []
        for i, hnd in enumerate(handles):
            pci = pynvml.nvmlDeviceGetPciInfo(hnd)
            bid = pci.busId.decode() if isinstance(pci.busId, bytes) else pci.busId
            bus.append(bid.lower())
            name = pynvml.nvmlDeviceGetName(hnd)
            gpus.append({"index": i, "name": name.decode() if isinstance(name, bytes) else name, "bus_id": bid})
        nvlinks: dict[int, dict[int, int]] = {i: {} for i in range(count)}
        for i, hnd in enumerate(handles):
            for link in range(MAX_NVLINKS):
                try:
                    if pynvml.nvmlDeviceGetNvLinkState(hnd, link) != 1:
                        continue
                    remote = pynvml.nvmlDeviceGetNvLinkRemotePciInfo(hnd, link).busId
                except Exception:
                    break  # no more links (or no NVLink at all)
                remote = (remote.decode() if isinstance(remote, bytes) else remote).lower()
                for j, b in enumerate(bus):
                    if j != i and _same_bus(b, remote):
                        nvlinks[i][j] = nvlinks[i].get(j, 0) + 1
        links: dict[int, dict[int, str]] = {i: {} for i in range(count)}
        for i in range(count):
            for j in range(count):
                if i == j:
                    links[i][j] = "X"
                elif nvlinks[i].get(j):
                    links[i][j] = f"NV{nvlinks[i][j]}"
                else:
                    try:
                        level = pynvml.nvmlDeviceGetTopologyCommonAncestor(handles[i], handles[j])
                        links[i][j] = NVML_LEVELS.get(int(level), "SYS")
                    except Exception:
                        links[i][j] = "SYS"
        return {"source": "nvml", "gpus": gpus, "links": links}
    except Exception:
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def _same_bus(a: str, b: str) -> bool:
    """NVML writes a bus id with an 8- or 4-digit domain: compare from the bus on."""
    return a.split(":", 1)[-1] == b.split(":", 1)[-1]


def parse_topo_matrix(text: str) -> dict:
    """``nvidia-smi topo -m``'s GPU matrix: ``{"gpus": [...], "links": {i: {j: word}}}``.

    Its header names the columns (``GPU0 GPU1 ... NIC0 ... CPU Affinity ...``); each GPU row
    gives that GPU's link to every column. NIC rows and the legend are left out."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in text.splitlines()]
    header = next((line for line in lines if re.match(r"^\s+GPU0\b", line)), None)
    if header is None:
        return {"source": "nvidia-smi", "gpus": [], "links": {}}
    columns = [c for c in header.split() if re.fullmatch(r"(?:GPU|NIC)\d+|mlx\d+_\d+", c)]
    gpu_cols = [c for c in columns if re.fullmatch(r"GPU\d+", c)]
    links: dict[int, dict[int, str]] = {}
    nics: dict[int, dict[str, str]] = {}
    for line in lines:
        cells = line.split()
        if not cells or not re.fullmatch(r"GPU\d+", cells[0]) or len(cells) < len(columns) + 1:
            continue
        i = int(cells[0][3:])
        links[i] = {int(c[3:]): cells[1 + k] for k, c in enumerate(columns) if c in gpu_cols}
        nics[i] = {c: cells[1 + k] for k, c in enumerate(columns) if c not in gpu_cols}
    gpus = [{"index": i} for i in sorted(links)]
    out = {"source": "nvidia-smi", "gpus": gpus, "links": links}
    if any(nics.values()):
        out["nics"] = nics
    return out


def smi_links(run=subprocess.run) -> dict | None:
    """The matrix from ``nvidia-smi topo -m``, or None where it is absent or fails."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        done = run([exe, "topo", "-m"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    parsed = parse_topo_matrix(done.stdout)
    return parsed if parsed["links"] else None


_RATE = re.compile(r"^\s*(?P<gbps>[\d.]+)\s*Gb/sec(?:\s*\((?P<what>[^)]*)\))?")


def infiniband(root: Path | str = "/sys/class/infiniband") -> list[dict]:
    """Each InfiniBand (or RoCE) device with its ports' rate, state and link layer."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for dev in sorted(root.iterdir()):
        ports = []
        pdir = dev / "ports"
        for port in sorted(pdir.iterdir(), key=lambda p: int(p.name) if p.name.isdigit() else 0) if pdir.is_dir() else ():
            def read(name: str) -> str:
                try:
                    return (port / name).read_text().strip()
                except OSError:
                    return ""
            rate = read("rate")
            m = _RATE.match(rate)
            ports.append({"port": int(port.name) if port.name.isdigit() else port.name, "rate": rate,
                          "rate_gbps": float(m["gbps"]) if m else None,
                          "state": read("state").split(":")[-1].strip() or None,
                          "link_layer": read("link_layer") or None})
        found.append({"device": dev.name, "ports": ports})
    return found


def interconnect(*, nvml=nvml_links, smi=smi_links, ib_root: Path | str = "/sys/class/infiniband") -> dict:
    """The whole inventory: GPU links (NVML, else nvidia-smi, else none) and InfiniBand devices."""
    gpus = nvml() or smi() or {"source": "none", "gpus": [], "links": {}}
    links = {str(i): {str(j): w for j, w in row.items()} for i, row in gpus["links"].items()}
    out = {"source": gpus["source"], "gpus": gpus["gpus"], "links": links,
           "nvlink": any(w.startswith("NV") for row in links.values() for w in row.values()),
           "infiniband": infiniband(ib_root)}
    if gpus.get("nics"):
        out["nics"] = {str(k): v for k, v in gpus["nics"].items()}
    return out


@lru_cache(maxsize=1)
def cached() -> dict:
    """:func:`interconnect`, once per process (the hardware does not change while it runs)."""
    return interconnect()


def groups(links: dict, joined) -> list[list[int]]:
    """The groups of GPUs (``links`` keyed by index as text) where ``joined(word)`` holds for every
    pair: cliques, found greedily in index order; a GPU alone is no group."""
    ids = sorted(int(i) for i in links)
    left, out = list(ids), []
    while left:
        group = [left.pop(0)]
        for j in list(left):
            if all(joined(links.get(str(g), {}).get(str(j), "")) for g in group):
                group.append(j)
                left.remove(j)
        if len(group) > 1:
            out.append(group)
    return out


def placement_labels(inv: dict) -> dict[str, str]:
    """The node's labels that the placement reads: GPU groups joined by NVLink, and under one PCIe switch.

    ``"0,1,2,3;4,5,6,7"``: groups separated by ``;`` (none: no label)."""
    links = inv.get("links") or {}
    out = {}
    for label, joined in ((NVLINK_LABEL, lambda w: w.startswith("NV")), (PCIE_LABEL, lambda w: w == "PIX")):
        found = groups(links, joined)
        if found:
            out[label] = ";".join(",".join(map(str, g)) for g in found)
    return out
