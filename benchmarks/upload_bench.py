"""Registry upload throughput versus a plain `cp`, and the service's memory during the upload.

Starts a real platform (hub, proxy, services) in a temporary folder, writes a
file of random bytes (1 GB by default), then, ``--runs`` times in turn:

1. ``cp`` of the file to a new file on the same file system, then
   ``sync FILE`` (an fsync of the copy: the same durability as the service,
   which fsyncs every file of a version before publishing it),
2. the same file uploaded through the API as a dataset version, exactly as
   ``flightbase datasets upload`` does it (``flightbase.uploads.Route``: declare
   the upload, ask ``POST .../direct`` for the registry's data URL and
   ticket, send ``CHUNK``-byte PATCH requests there, then commit: checksum
   check, fsync, read-only modes, atomic rename). With ``--via-proxy`` the
   chunks go as ``PATCH .../files/0`` through the hub's proxy instead (what
   a client does where the registry has no data endpoint), with
   ``--direct`` to the service's own API port. The client's
   SHA-256 of the file, computed before the upload is declared, is timed
   separately (it needs no network and no service).

Each run prints both times and their ratio; the summary gives the medians.
During each upload the registry service's RSS is sampled every 0.1 s (peak
minus the baseline before the upload) and the CPU time of the registry
service, of the hub's proxy (configurable-http-proxy) and of this client is
measured, and the service's event-loop thread and the proxy's main thread apart: it forwards every byte
(Node.js runs the proxy's JavaScript and socket I/O on one thread), so its
CPU time is a lower bound of the upload's time. The load average is printed too: on a shared machine both sides of
the ratio move with other work.

    .venv/bin/python benchmarks/upload_bench.py [--size-mb 1000] [--runs 5] [--chunk-mb 256]
        [--via-proxy | --direct] [--buffered-writes]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform as host
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flightbase import uploads  # noqa: E402
from flightbase.client import Client  # noqa: E402
from tests.platform.harness import new_platform  # noqa: E402
from benchmarks._proc import cpu_s, environ_of, processes, status_kb  # noqa: E402


def registry_pid(port: int) -> int:
    for pid in processes("flightbase_registry"):
        try:
            env = environ_of(pid)
        except OSError:
            continue
        if env.get("FLIGHTBASE_PORT") == str(port):
            return pid
    raise RuntimeError("registry service process not found")


def copy_with_sync(src: Path, dst: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(["cp", str(src), str(dst)], check=True)
    subprocess.run(["sync", str(dst)], check=True)
    took = time.perf_counter() - t0
    dst.unlink()
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=1000, help="size of the test file in MB (default 1000 = 1 GB)")
    ap.add_argument("--runs", type=int, default=5, help="copy + upload pairs (default 5)")
    ap.add_argument("--chunk-mb", type=int, default=uploads.CHUNK >> 20,
                    help=f"bytes per PATCH request, MiB (default: the CLI's, {uploads.CHUNK >> 20})")
    road = ap.add_mutually_exclusive_group()
    road.add_argument("--via-proxy", action="store_true",
                      help="send the chunks as PATCH through the hub's proxy, not to the registry's data endpoint")
    road.add_argument("--direct", action="store_true",
                      help="send the chunks as PATCH to the registry service's own API port, bypassing the hub's proxy")
    ap.add_argument("--buffered-writes", action="store_true",
                    help="run the service with direct_writes=0 (page cache writes, the previous behaviour)")
    args = ap.parse_args()
    size = args.size_mb * 1_000_000
    uploads.CHUNK = args.chunk_mb << 20
    rows = []
    with tempfile.TemporaryDirectory(prefix="upload-bench-", dir=os.environ.get("TMPDIR", "/var/tmp")) as tmp:
        tmp = Path(tmp)
        src = tmp / "data.bin"
        with open(src, "wb") as fh:
            left = size
            while left:
                block = os.urandom(min(left, 16 << 20))
                fh.write(block)
                left -= len(block)
        subprocess.run(["sync", str(src)], check=True)

        p = new_platform(tmp / "platform")
        p.data_dir.mkdir(parents=True)
        if args.buffered_writes:
            (p.data_dir / "registry.json").write_text(json.dumps({"direct_writes": 0}))
        p.start()
        try:
            admin = p.admin_token
            assert p.api("jobqueue", "POST", "workspaces", admin, json={"name": "bench", "settings": {}}).status_code == 201
            pid = registry_pid(p.port)
            proxy = processes("configurable-http-proxy", f"--port {p.port}")
            url = p.url
            if args.direct:
                env = dict(e.split(b"=", 1) for e in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if b"=" in e)
                url = f"http://127.0.0.1:{int(env[b'FLIGHTBASE_REGISTRY_PORT'])}"
            with Client(url=url, token=admin, timeout=600) as c:
                c.request("registry", "POST", "workspaces/bench/datasets", json={"name": "big"})
                for run in range(1, args.runs + 1):
                    rows.append(one_run(c, src, size, tmp, pid, proxy, data_endpoint=not (args.via_proxy or args.direct)))
                    r = rows[-1]
                    print(f"run {run}: cp+sync {r['cp']:.2f} s, upload {r['up']:.2f} s (chunks {r['sent']:.2f} s, "
                          f"commit {r['up'] - r['sent']:.2f} s), ratio {r['up'] / r['cp']:.2f}x; CPU registry "
                          f"{r['cpu_reg']:.2f} s (event loop {r['cpu_loop']:.2f} s), proxy {r['cpu_proxy']:.2f} s (main thread {r['cpu_proxy_main']:.2f} s), client {r['cpu_client']:.2f} s; "
                          f"registry RSS +{r['rss_up'] / 1024:.0f} MB; client sha256 {r['hash']:.2f} s; "
                          f"load {r['load']:.1f}", flush=True)
                    c.request("registry", "DELETE", f"workspaces/bench/datasets/big/versions/{r['version']}")
        finally:
            p.stop()

    mb = size / 1e6
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0] if k != "version"}
    ratios = sorted(r["up"] / r["cp"] for r in rows)
    print(f"machine: {os.cpu_count()} cores, {host.platform()}, Python {host.python_version()}")
    print(f"file: {mb:.0f} MB of random bytes, {len(rows)} runs, {uploads.CHUNK >> 20} MiB per PATCH, upload "
          f"{'to the service API port' if args.direct else 'through the hub proxy' if args.via_proxy else 'to the data endpoint'}, "
          f"{'page cache' if args.buffered_writes else 'direct'} writes in the service")
    print(f"cp + sync FILE (median):  {med['cp']:6.2f} s  {mb / med['cp']:7.1f} MB/s")
    print(f"API upload + commit:      {med['up']:6.2f} s  {mb / med['up']:7.1f} MB/s   (client sha256 beforehand: {med['hash']:.2f} s)")
    print(f"ratio upload / cp:        median {statistics.median(ratios):.2f}x, runs {', '.join(f'{x:.2f}' for x in ratios)}"
          "  (target: within 2x)")
    print(f"CPU per upload (median):  registry {med['cpu_reg']:.2f} s (event loop thread {med['cpu_loop']:.2f} s), proxy {med['cpu_proxy']:.2f} s, client {med['cpu_client']:.2f} s")
    if args.via_proxy:
        print(f"proxy main thread:        {med['cpu_proxy_main']:.2f} s of CPU per upload: the upload cannot take less "
              f"(one thread forwards every byte), {med['cpu_proxy_main'] / med['cp']:.2f}x the median cp + sync")
    print(f"registry RSS: before {med['rss_before'] / 1024:.0f} MB, peak rise during an upload "
          f"+{max(r['rss_up'] for r in rows) / 1024:.0f} MB (largest of the runs)")
    return 0


def one_run(c, src: Path, size: int, tmp: Path, pid: int, proxy: list[int], data_endpoint: bool) -> dict:
    load = os.getloadavg()[0]
    cp = copy_with_sync(src, tmp / "copy.bin")
    t0 = time.perf_counter()
    h = hashlib.sha256()
    with open(src, "rb") as fh:
        while block := fh.read(uploads.READ):
            h.update(block)
    hash_s = time.perf_counter() - t0
    base_rss = status_kb(pid)
    samples: list[int] = []
    done = threading.Event()

    def sample():
        while not done.is_set():
            samples.append(status_kb(pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cpu0, proxy0, mine0 = cpu_s(pid), sum(map(cpu_s, proxy)), time.process_time()
    proxy_main0, loop0 = sum(cpu_s(x, x) for x in proxy), cpu_s(pid, pid)
    t0 = time.perf_counter()
    up = c.request("registry", "POST", "workspaces/bench/datasets/big/uploads",
                   json={"files": [{"path": "data.bin", "size": size, "sha256": h.hexdigest()}]})
    path = f"workspaces/bench/datasets/big/uploads/{up['id']}"
    route = uploads.Route(c, path) if data_endpoint else None
    assert route is None or route.ticket is not None, "the registry has no data endpoint"
    offset = 0
    with open(src, "rb") as fh:
        while offset < size:
            length = min(uploads.CHUNK, size - offset)
            if route is not None:
                offset = route.send(0, fh, offset, length)["offset"]
            else:
                offset = uploads.send_chunk(c, f"{path}/files/0", fh, offset, length)["offset"]
    sent = time.perf_counter() - t0
    version = c.request("registry", "POST", f"workspaces/bench/datasets/big/uploads/{up['id']}/commit")
    up_s = time.perf_counter() - t0
    row = {"cp": cp, "up": up_s, "sent": sent, "hash": hash_s, "load": load, "version": version["version"],
           "cpu_reg": cpu_s(pid) - cpu0, "cpu_proxy": sum(map(cpu_s, proxy)) - proxy0,
           "cpu_proxy_main": sum(cpu_s(x, x) for x in proxy) - proxy_main0, "cpu_loop": cpu_s(pid, pid) - loop0,
           "cpu_client": time.process_time() - mine0}
    done.set()
    sampler.join()
    assert version["size_bytes"] == size
    row.update(rss_before=base_rss, rss_up=max(samples) - base_rss)
    return row


if __name__ == "__main__":
    sys.exit(main())
