"""A stub Kubernetes API server, so that the real Helm engine can render and "install" the chart.

helm-sdkpy (libhelm, Helm v4) has no template call and no dry-run option: its
install talks to an API server.  This stub (stdlib ``http.server``, plain
HTTP on a loopback port) answers what Helm's install asks: the server
version, API discovery for the kinds the chart uses, a 404 for every object
(nothing exists yet), and a create that stores the object it was sent.  The
objects Helm created are then exactly the rendered manifests, as JSON.  It
runs no controller, no admission and no validation: the tests validate the
stored objects against the official schemas themselves.  A mock, because no
real API server can run here (no Kubernetes, no container engine).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

VERSION = {"major": "1", "minor": "33", "gitVersion": "v1.33.0", "gitCommit": "stub", "gitTreeState": "clean",
           "buildDate": "2025-04-23T00:00:00Z", "goVersion": "go1.24.2", "compiler": "gc", "platform": "linux/amd64"}

# group/version -> [(plural, kind, namespaced)]: the kinds the chart renders, plus what Helm may look up
RESOURCES: dict[str, list[tuple[str, str, bool]]] = {
    "v1": [("pods", "Pod", True), ("services", "Service", True), ("configmaps", "ConfigMap", True),
           ("secrets", "Secret", True), ("serviceaccounts", "ServiceAccount", True),
           ("persistentvolumeclaims", "PersistentVolumeClaim", True), ("namespaces", "Namespace", False)],
    "apps/v1": [("deployments", "Deployment", True), ("statefulsets", "StatefulSet", True)],
    "batch/v1": [("jobs", "Job", True)],
    "rbac.authorization.k8s.io/v1": [("roles", "Role", True), ("rolebindings", "RoleBinding", True),
                                     ("clusterroles", "ClusterRole", False),
                                     ("clusterrolebindings", "ClusterRoleBinding", False)],
    "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget", True)],
    "networking.k8s.io/v1": [("networkpolicies", "NetworkPolicy", True)],
    # the Prometheus Operator's CRD (metrics.serviceMonitor.enabled)
    "monitoring.coreos.com/v1": [("servicemonitors", "ServiceMonitor", True)],
}
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]


def _resource_list(group_version: str) -> dict:
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": [
        {"name": plural, "singularName": kind.lower(), "namespaced": namespaced, "kind": kind, "verbs": VERBS}
        for plural, kind, namespaced in RESOURCES[group_version]]}


def _groups() -> dict:
    groups = []
    for gv in RESOURCES:
        if "/" in gv:
            group, version = gv.split("/")
            entry = {"groupVersion": gv, "version": version}
            groups.append({"name": group, "versions": [entry], "preferredVersion": entry})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


class StubApi:
    """``with StubApi() as api``: ``api.kubeconfig(path)`` writes a kubeconfig for it;
    ``api.created`` lists the objects created, in order.

    ``existing``: objects already in the "cluster", by their API path
    (``/api/v1/namespaces/flightbase/secrets/flightbase-metrics``), as an earlier
    release left them: a GET answers them (the chart's ``lookup`` and Helm's
    ownership check), and Helm's update of one (a PATCH, when it adopts an object
    of its own release) is kept in ``patched`` and answered with the object."""

    def __init__(self, existing: dict[str, dict] | None = None):
        self.existing = dict(existing or {})
        self.patched: list[tuple[str, str, bytes]] = []  # (path, content type, body)
        self.created: list[dict] = []  # the chart's objects, as sent
        self.records: list[tuple[str, str]] = []  # Helm's release records (not decoded)
        self.requests: list[tuple[str, str]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _not_found(self) -> None:
                self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                                 "code": 404, "message": f"{self.path} not found"})

            def do_GET(self):
                path = self.path.split("?", 1)[0].rstrip("/")
                stub.requests.append(("GET", path))
                if path == "/version":
                    return self._send(200, VERSION)
                if path == "/api":
                    return self._send(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
                if path == "/apis":
                    return self._send(200, _groups())
                if path == "/api/v1":
                    return self._send(200, _resource_list("v1"))
                if path.startswith("/apis/") and path[len("/apis/"):] in RESOURCES:
                    return self._send(200, _resource_list(path[len("/apis/"):]))
                if path in stub.existing:
                    return self._send(200, stub.existing[path])
                self._not_found()  # every other object: nothing exists yet

            def _body(self) -> dict | None:
                """The JSON object sent, or None for another encoding (Helm's own release
                records go through client-go's typed client, as protobuf)."""
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if "json" not in (self.headers.get("Content-Type") or ""):
                    return None
                return json.loads(data or b"{}")

            def _kind(self) -> tuple[str, str]:
                parts = self.path.split("?", 1)[0].strip("/").split("/")
                gv = parts[1] if parts[0] == "api" else f"{parts[1]}/{parts[2]}"
                plural = parts[-1] if self.command == "POST" else parts[-2]
                kind = next(k for p, k, _ in RESOURCES[gv] if p == plural)
                return gv, kind

            def _store(self, status: int) -> None:
                body = self._body()
                stub.requests.append((self.command, self.path))
                if body is None:  # Helm's release record: answer in JSON, which client-go also reads
                    gv, kind = self._kind()
                    stub.records.append((self.command, self.path))
                    body = {"apiVersion": gv, "kind": kind, "metadata": {"name": "release"}}
                else:
                    stub.created.append(body)
                body.setdefault("metadata", {}).update(uid=f"uid-{len(stub.requests)}",
                                                       resourceVersion=str(len(stub.requests)))
                self._send(status, body)

            def do_POST(self):
                self._store(201)

            def do_PUT(self):
                self._store(200)

            def do_PATCH(self):  # nothing is patched on a first install, but what already exists
                path = self.path.split("?", 1)[0].rstrip("/")
                stub.requests.append(("PATCH", self.path))
                if path in stub.existing:
                    data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                    stub.patched.append((path, self.headers.get("Content-Type") or "", data))
                    return self._send(200, stub.existing[path])
                self._not_found()

            def do_DELETE(self):
                stub.requests.append(("DELETE", self.path))
                self._not_found()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="stub-api")

    def __enter__(self) -> "StubApi":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def kubeconfig(self, path: Path, namespace: str = "flightbase") -> Path:
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "stub",
            "clusters": [{"name": "stub", "cluster": {"server": self.url}}],
            "users": [{"name": "stub", "user": {"token": "stub"}}],
            "contexts": [{"name": "stub", "context": {"cluster": "stub", "user": "stub", "namespace": namespace}}],
        }
        path.write_text(json.dumps(config))
        return path
