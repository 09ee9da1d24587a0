"""The API's job-output port (``flightbase_jobqueue.output.BackendOutput``) over a real job's files
(``backends/jobfiles.JobFiles``, what the on-machine backends read) and the real SQL store on
SQLite: the bounded log tail, following from an offset, metric records, NCCL logs, and whether the
job can still write."""

from __future__ import annotations

import json

from flightbase_server.service import db
from flightbase_jobqueue import models
from flightbase_jobqueue.app import MIGRATIONS
from flightbase_jobqueue.backends.jobfiles import JobFiles
from flightbase_jobqueue.backends.spec import JobRef
from flightbase_jobqueue.output import BackendOutput
from flightbase_jobqueue.store import SqlStore


def test_the_port_reads_a_jobs_output_and_asks_the_store_whether_it_ended(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'jobs.db'}")
    try:
        db.upgrade(engine, MIGRATIONS)
        sessions = db.Sessions(engine)
        with sessions.begin() as s:
            s.add(models.Training(id="t1", workspace="w", name="t", created_by="ann", spec={}))
            s.flush()
            s.add(models.Job(id="j1", training_id="t1", workspace="w", name="j1", gpus=1, kind="training",
                             state="running", submitted_at=0.0, started_at=1.0, created_by="ann",
                             placement={"local": [0]}))
        (tmp_path / "data").mkdir()
        files = JobFiles(tmp_path / "data")
        files.make_job_dir("j1", -1)
        files.append_log("j1", "hello\nloss=0.5\nbye\n")
        files.make_metrics_file("j1", -1, -1).write_text(json.dumps({"step": 1, "acc": 0.9}) + "\n")
        output = BackendOutput(files, SqlStore(sessions), max_log_bytes=13)
        ref = JobRef("j1", "w", "t1")

        assert output.log_lines(ref) == ["loss=0.5", "bye"]  # the last 13 bytes
        assert output.log_from(ref, len(b"hello\n")) == b"loss=0.5\nbye\n"
        assert output.log_from(ref, 100) == b""
        assert output.metric_records(ref) == [{"step": 1.0, "acc": 0.9}, {"loss": 0.5}]
        assert output.nccl_logs(ref) == {}  # the job has not initialised NCCL
        assert not output.ended("j1")  # running: its output may grow
        assert output.ended("unknown")
    finally:
        engine.dispose()


def test_a_backend_that_cannot_read_nccl_logs_gives_no_record(tmp_path):
    class NoNccl:  # a backend without ``nccl_logs`` (the simulated one)
        def log_tail(self, job, limit):
            return b""

    assert BackendOutput(NoNccl(), store=None).nccl_logs(JobRef("j", "w", "t")) == {}
