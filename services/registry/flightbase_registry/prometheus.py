"""The registry's Prometheus metrics (served at ``/services/registry/metrics``, flightbase_server.service.metrics).

Observed as things happen:

- ``flightbase_upload_bytes_total{workspace}``: bytes of dataset uploads
  received, on both roads (the API's ``PATCH .../files/{index}`` and the data
  endpoint, direct.py): both go through ``writer.Chunk``, which counts
  what each chunk request stored when it ends, whether or not the file then
  passed its checksum.

Computed at scrape time from the database (``RegistryCollector``):

- ``flightbase_datasets{workspace}``, ``flightbase_dataset_versions{workspace}``, ``flightbase_images{workspace}``;
- ``flightbase_storage_bytes{workspace,kind}``: ``datasets`` (every version's
  files) and ``images`` (uploaded archives), which count against the
  workspace's storage quota, and ``uploads`` (held by uploads in progress), as
  ``GET .../storage`` reports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from sqlalchemy import func, select

from flightbase_registry.models import Dataset, DatasetVersion, Image, Upload

UPLOAD_BYTES = Counter(
    "flightbase_upload_bytes",  # exposed as flightbase_upload_bytes_total
    "Bytes of dataset uploads received and stored (through the API or the data endpoint).",
    ["workspace"],
)

STORAGE_KINDS = ("datasets", "images", "uploads")


def count_upload(workspace: str, received: int) -> None:
    if received > 0:
        UPLOAD_BYTES.labels(workspace).inc(received)


@dataclass(frozen=True)
class RegistryCounts:
    datasets: Mapping[str, int] = field(default_factory=dict)
    versions: Mapping[str, int] = field(default_factory=dict)
    images: Mapping[str, int] = field(default_factory=dict)
    storage: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (workspace, kind) -> bytes


def _per_workspace(session, stmt) -> dict[str, int]:
    return {ws: int(n or 0) for ws, n in session.execute(stmt)}


def registry_counts(session) -> RegistryCounts:
    storage: dict[tuple[str, str], int] = {}
    for kind, column, model in (("datasets", DatasetVersion.size_bytes, DatasetVersion),
                                ("images", Image.size_bytes, Image), ("uploads", Upload.total_bytes, Upload)):
        for ws, n in _per_workspace(session, select(model.workspace, func.sum(column)).group_by(model.workspace)).items():
            storage[ws, kind] = n
    return RegistryCounts(
        datasets=_per_workspace(session, select(Dataset.workspace, func.count()).group_by(Dataset.workspace)),
        versions=_per_workspace(session, select(DatasetVersion.workspace, func.count()).group_by(DatasetVersion.workspace)),
        images=_per_workspace(session, select(Image.workspace, func.count()).group_by(Image.workspace)),
        storage=storage,
    )


class RegistryCollector:
    """The gauges of one scrape, from ``RegistryCounts`` (pure: no I/O)."""

    def __init__(self, counts: RegistryCounts):
        self.counts = counts

    def collect(self) -> Iterable[Metric]:
        c = self.counts
        workspaces = sorted(set(c.datasets) | set(c.versions) | set(c.images) | {ws for ws, _ in c.storage})
        for name, text, values in (
            ("flightbase_datasets", "Datasets of the workspace.", c.datasets),
            ("flightbase_dataset_versions", "Dataset versions of the workspace.", c.versions),
            ("flightbase_images", "Images of the workspace (registered by reference or uploaded).", c.images),
        ):
            family = GaugeMetricFamily(name, text, labels=["workspace"])
            for ws in workspaces:
                family.add_metric([ws], values.get(ws, 0))
            yield family
        family = GaugeMetricFamily("flightbase_storage_bytes", "Storage of the workspace: datasets (every "
                                   "version) and images (uploaded archives) count against its quota; uploads "
                                   "are held by uploads in progress.", labels=["workspace", "kind"])
        for ws in workspaces:
            for kind in STORAGE_KINDS:
                family.add_metric([ws, kind], c.storage.get((ws, kind), 0))
        yield family
