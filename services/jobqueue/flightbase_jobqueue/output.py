"""Job output for the API (:class:`~flightbase_jobqueue.ports.JobOutput`), read from the execution
backend's files or pods and, for whether a job can still write, the store."""

from __future__ import annotations

from typing import Mapping, Protocol

from flightbase_jobqueue.backends.spec import JobRef
from flightbase_jobqueue.states import JobState

MAX_LOG_BYTES = 4 * 1024 * 1024  # the tail of a job's output that GET /jobs/{id}/logs and its metrics read


class OutputFiles(Protocol):
    """What the backends (``backends/jobfiles.OnThisMachine``, ``backends/kubernetes``) offer."""

    def log_tail(self, job: JobRef, limit: int) -> bytes: ...
    def log_from(self, job: JobRef, offset: int) -> bytes: ...
    def rank_prefix(self, launcher: str) -> str | None: ...
    def metric_records(self, job: JobRef, log_lines: list[str]) -> list[dict[str, float]]: ...


class JobStates(Protocol):
    def state_of(self, job_id: str) -> JobState | None: ...


class BackendOutput:
    """:class:`~flightbase_jobqueue.ports.JobOutput` over the runtime's backend and store."""

    def __init__(self, backend: OutputFiles, store: JobStates, *, max_log_bytes: int = MAX_LOG_BYTES):
        self.backend = backend
        self.store = store
        self.max_log_bytes = max_log_bytes

    def log_lines(self, job: JobRef) -> list[str]:
        return self.backend.log_tail(job, self.max_log_bytes).decode(errors="replace").splitlines()

    def log_from(self, job: JobRef, offset: int) -> bytes:
        return self.backend.log_from(job, offset)

    def rank_prefix(self, launcher: str) -> str | None:
        return self.backend.rank_prefix(launcher)

    def metric_records(self, job: JobRef) -> list[dict[str, float]]:
        return self.backend.metric_records(job, self.log_lines(job))

    def nccl_logs(self, job: JobRef) -> Mapping[str, str]:
        read = getattr(self.backend, "nccl_logs", None)  # backends that cannot read them give no record
        return read(job) if read is not None else {}

    def ended(self, job_id: str) -> bool:
        return self.store.state_of(job_id) is None  # neither queued nor active
