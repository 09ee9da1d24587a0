"""Reading a job's NCCL logs back (``hostfs.read_folder``, ``JobFiles.nccl_logs``): the folder is the
job's to write, so a link, a FIFO or a flood of entries must not make the platform follow, hang or
read without bound. Real files on this machine; nothing is mocked."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

from flightbase_server import hostfs
from flightbase_jobqueue.backends.jobfiles import NCCL_LOG_NAME, JobFiles
from flightbase_jobqueue.backends.spec import JobRef

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nccl"
NAME = re.compile(r".+\.log")


def test_links_fifos_and_folders_are_not_read(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "ok.log").write_text("NCCL INFO Using network Socket\n")
    secret = tmp_path / "secret"
    secret.write_text("not for the job")
    os.symlink(secret, folder / "link.log")
    os.mkfifo(folder / "fifo.log")
    (folder / "dir.log").mkdir()
    found = {}
    reader = threading.Thread(target=lambda: found.update(hostfs.read_folder(folder, NAME, max_files=10, max_bytes=100)))
    reader.start()
    reader.join(10)
    assert not reader.is_alive(), "reading the folder hung on a FIFO"
    assert found == {"ok.log": b"NCCL INFO Using network Socket\n"}


def test_the_folder_itself_is_not_followed(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "a.log").write_text("x")
    os.symlink(real, tmp_path / "run")
    assert hostfs.read_folder(tmp_path / "run", NAME, max_files=10, max_bytes=100) == {}
    assert hostfs.read_folder(tmp_path / "missing", NAME, max_files=10, max_bytes=100) == {}


def test_reading_is_bounded(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    for i in range(50):
        (folder / f"r{i:02d}.log").write_bytes(b"y" * 5000)
    (folder / "other.txt").write_text("skipped: not a log's name")
    found = hostfs.read_folder(folder, NAME, max_files=8, max_bytes=1000)
    assert len(found) == 8 and all(len(v) == 1000 for v in found.values())
    # only the first entries are looked at: a folder of a million entries costs a bounded listing
    assert len(hostfs.read_folder(folder, NAME, max_files=100, max_bytes=10, max_entries=5)) <= 5


def test_job_files_read_the_latest_runs_logs(tmp_path):
    files = JobFiles(tmp_path)
    files.make_job_dir("j1", -1)
    first = files.make_nccl_dir("j1", 0, -1, -1)
    (first / "old.1.log").write_text("NCCL INFO Using network IB\n")
    latest = files.make_nccl_dir("j1", 1, -1, -1)
    for p in (FIXTURES / "p2p_nvlink").glob("*.log"):
        (latest / p.name).write_text(p.read_text())
    (latest / "bad name!.log").write_text("ignored")
    logs = files.nccl_logs(JobRef("j1", "w", "t"))
    assert sorted(logs) == ["gpu-a.4101.log", "gpu-a.4102.log"]
    assert all(NCCL_LOG_NAME.fullmatch(n) for n in logs)
    assert files.nccl_logs(JobRef("nothing", "w", "t")) == {}
