"""Registry upload throughput versus a plain `cp`, and the service's memory during the upload.

Starts a real platform (hub, proxy, services) in a temporary folder, writes a
file of random bytes (1 GB by default), then in one run:

1. ``cp`` of the file to a new file on the same file system (then ``sync``),
2. the same file uploaded through the API as a dataset version with the CLI's
   upload function (declare with sha256, chunks of 64 MB through the hub's
   proxy, commit: checksum check, fsync, read-only, atomic publish),

and prints the two rates, their ratio, how the upload's time splits between
sending the chunks and the commit, the CPU time of the registry service and
of this client during the upload, and the service's RSS sampled every 0.1 s
during the upload (peak minus the baseline before it). The machine's load
average is printed too: on a shared machine both sides of the ratio move.

    .venv/bin/python benchmarks/upload_bench.py [--size-mb 1000]
"""

from __future__ import annotations

import argparse
import os
import platform as host
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flightbase import cli_datasets  # noqa: E402
from flightbase.client import Client  # noqa: E402
from tests.platform.harness import new_platform  # noqa: E402


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def registry_pid(port: int) -> int:
    out = subprocess.run(["pgrep", "-f", "flightbase_registry"], capture_output=True, text=True).stdout.split()
    for pid in out:
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(e.startswith(b"FLIGHTBASE_PORT=" + str(port).encode()) for e in env):
            return int(pid)
    raise RuntimeError("registry service process not found")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=1000, help="size of the test file in MB (default 1000 = 1 GB)")
    ap.add_argument("--direct", action="store_true",
                    help="send to the registry service's own port, bypassing the hub's proxy (to see what the proxy costs)")
    args = ap.parse_args()
    size = args.size_mb * 1_000_000
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="upload-bench-", dir=os.environ.get("TMPDIR", "/var/tmp")) as tmp:
        tmp = Path(tmp)
        src = tmp / "data.bin"
        with open(src, "wb") as fh:
            left = size
            while left:
                block = os.urandom(min(left, 16 << 20))
                fh.write(block)
                left -= len(block)
        subprocess.run(["sync"], check=True)

        t0 = time.perf_counter()
        subprocess.run(["cp", str(src), str(tmp / "copy.bin")], check=True)
        subprocess.run(["sync"], check=True)
        cp_s = time.perf_counter() - t0
        (tmp / "copy.bin").unlink()

        p = new_platform(tmp / "platform")
        (tmp / "platform").mkdir()
        p.start()
        try:
            admin = p.admin_token
            assert p.api("jobqueue", "POST", "workspaces", admin, json={"name": "bench", "settings": {}}).status_code == 201
            pid = registry_pid(p.port)
            base_rss = rss_kb(pid)
            samples: list[int] = []
            done = threading.Event()

            def sample():
                while not done.is_set():
                    samples.append(rss_kb(pid))
                    time.sleep(0.1)

            sampler = threading.Thread(target=sample, daemon=True)
            url = p.url
            if args.direct:
                env = dict(e.split(b"=", 1) for e in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if b"=" in e)
                url = f"http://127.0.0.1:{int(env[b'FLIGHTBASE_REGISTRY_PORT'])}"
            with Client(url=url, token=admin, timeout=600) as c:
                # checksums are computed by the client before the upload starts; timed separately
                t0 = time.perf_counter()
                digest = cli_datasets._sha256(src, cli_datasets.Progress(size, "", quiet=True))
                hash_s = time.perf_counter() - t0
                sampler.start()
                cpu0, mine0 = cpu_s(pid), time.process_time()
                t0 = time.perf_counter()
                c.request("registry", "POST", "workspaces/bench/datasets", json={"name": "big"})
                up = c.request("registry", "POST", "workspaces/bench/datasets/big/uploads",
                               json={"files": [{"path": "data.bin", "size": size, "sha256": digest}]})
                offset = 0
                with open(src, "rb") as fh:
                    while offset < size:
                        length = min(cli_datasets.CHUNK, size - offset)
                        ans = c.request("registry", "PATCH", f"workspaces/bench/datasets/big/uploads/{up['id']}/files/0",
                                        params={"offset": offset}, content=cli_datasets._chunks(fh, length),
                                        headers={"Content-Length": str(length)})
                        offset = ans["offset"]
                sent_s = time.perf_counter() - t0
                version = c.request("registry", "POST", f"workspaces/bench/datasets/big/uploads/{up['id']}/commit")
                up_s = time.perf_counter() - t0
                service_cpu, client_cpu = cpu_s(pid) - cpu0, time.process_time() - mine0
                done.set()
                sampler.join()
            assert version["size_bytes"] == size
        finally:
            p.stop()

    mb = size / 1e6
    print(f"machine: {os.cpu_count()} cores, {host.platform()}, Python {host.python_version()}")
    print(f"file: {mb:.0f} MB of random bytes; upload {'straight to the service' if args.direct else 'through the hub proxy'}")
    print(f"cp + sync:             {cp_s:6.2f} s  {mb / cp_s:7.1f} MB/s")
    print(f"API upload + commit:   {up_s:6.2f} s  {mb / up_s:7.1f} MB/s   (client sha256 beforehand: {hash_s:.2f} s)")
    print(f"  of which chunks sent {sent_s:6.2f} s, commit (fsync, read-only, rename) {up_s - sent_s:.2f} s")
    print(f"  CPU: registry service {service_cpu:.2f} s, client {client_cpu:.2f} s "
          f"(load average before the run {load[0]:.2f}: the machine is shared)")
    print(f"ratio upload / cp:     {up_s / cp_s:6.2f}x  (target: within 2x)")
    print(f"registry RSS: before {base_rss / 1024:.0f} MB, peak during upload {max(samples) / 1024:.0f} MB "
          f"(+{(max(samples) - base_rss) / 1024:.0f} MB), {len(samples)} samples")
    return 0


if __name__ == "__main__":
    sys.exit(main())
