"""An in-memory KubeClient for the tests: no Kubernetes cluster can run where they do.

It stores objects, numbers every change with a resourceVersion, and replays
pod changes to watchers.  It runs no controller: a test plays the Job
controller / MPI Operator / kubelet by setting pods with :meth:`set_pod`.
``fail_create`` makes the create of a named object fail; ``break_watch``
makes the next watch raise after the events it already delivered, like a
connection that dies.
"""

from __future__ import annotations

import copy
from typing import Iterator

from flightbase_jobqueue.backends.kubernetes.client import KubeError


def _matches(obj: dict, selector: str) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    for term in filter(None, selector.split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


class FakeKube:
    def __init__(self):
        self.objects: dict[tuple[str, str], dict] = {}
        self.version = 0
        self.pod_events: list[tuple[int, str, dict]] = []
        self.deleted: list[tuple[str, str, int | None]] = []
        self.fail_create: set[str] = set()
        self.break_watch = False
        self.down = False
        self.logs: dict[str, bytes] = {}  # pod name -> its training container's log

    def _bump(self, obj: dict) -> dict:
        self.version += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.version)
        return obj

    # -- KubeClient ------------------------------------------------------------------
    def create(self, obj: dict) -> dict:
        if self.down:
            raise KubeError("connection refused")
        key = (obj["kind"], obj["metadata"]["name"])
        if obj["metadata"]["name"] in self.fail_create:
            raise KubeError(f"admission webhook denied {key}", 403)
        if key in self.objects:
            raise KubeError(f"{key} already exists", 409)
        self.objects[key] = self._bump(copy.deepcopy(obj))
        return copy.deepcopy(self.objects[key])

    def delete(self, kind: str, name: str, *, grace_seconds: int | None = None, propagation: str = "Background") -> None:
        if self.down:
            raise KubeError("connection refused")
        self.deleted.append((kind, name, grace_seconds))
        obj = self.objects.pop((kind, name), None)
        if obj is not None and kind == "Pod":
            self.pod_events.append((self._bump(obj) and self.version, "DELETED", copy.deepcopy(obj)))

    def list(self, kind: str, label_selector: str) -> tuple[list[dict], str]:
        if self.down:
            raise KubeError("connection refused")
        items = [copy.deepcopy(o) for (k, _), o in sorted(self.objects.items()) if k == kind and _matches(o, label_selector)]
        return items, str(self.version)

    def watch(self, kind: str, label_selector: str, resource_version: str, timeout_seconds: int) -> Iterator[tuple[str, dict]]:
        assert kind == "Pod"
        since = int(resource_version or 0)
        for version, kind_, obj in list(self.pod_events):
            if version > since and _matches(obj, label_selector):
                yield kind_, copy.deepcopy(obj)
        if self.break_watch:
            self.break_watch = False
            raise KubeError("watch Pod: connection reset by peer")

    def pod_log(self, name: str, container: str) -> bytes:
        if self.down:
            raise KubeError("connection refused")
        if ("Pod", name) not in self.objects:
            raise KubeError(f"pods {name!r} not found", 404)
        return self.logs.get(name, b"")

    # -- playing the controllers ---------------------------------------------------------
    def pods_of(self, job_label: str) -> list[dict]:
        return [o for (k, _), o in self.objects.items() if k == "Pod" and o["metadata"]["labels"].get("flightbase.io/job") == job_label]

    def set_pod(self, name: str, labels: dict, phase: str, *, exit_code: int | None = None,
                waiting: str | None = None, record: bool = True) -> dict:
        """Create or update a pod; ``record=False`` changes it without a watch event
        (what a watch that died would have missed)."""
        state: dict = {"running": {}} if phase == "Running" else {}
        if exit_code is not None:
            state = {"terminated": {"exitCode": exit_code}}
        if waiting:
            state = {"waiting": {"reason": waiting, "message": "from the test"}}
        pod = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": dict(labels)},
            "status": {"phase": phase, "containerStatuses": [{"name": "training", "state": state}]},
        }
        self.objects[("Pod", name)] = self._bump(pod)
        if record:
            self.pod_events.append((self.version, "MODIFIED", copy.deepcopy(pod)))
        return pod
