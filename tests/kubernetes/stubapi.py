"""A stub Kubernetes API server, so that the real Helm engine can render and "install" the chart.

helm-sdkpy (libhelm, Helm v4) has no template call and no dry-run option: its
install talks to an API server.  This stub (stdlib ``http.server``, plain
HTTP on a loopback port) answers what Helm's install asks: the server
version, API discovery for the kinds the chart uses, a 404 for every object
(nothing exists yet), and a create that stores the object it was sent.  The
objects Helm created are then exactly the rendered manifests, as JSON.  It
runs no controller, no admission and no validation: the tests validate the
stored objects against the official schemas themselves.  A mock, because no
real API server can run here (no Kubernetes; the Docker engine runs
containers, not a cluster).  :class:`ClusterStub` below keeps state, for workloads that run.
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


def _send_json(handler: BaseHTTPRequestHandler, status: int, body) -> None:
    """Answer ``body`` as JSON with ``status`` (both stubs' handlers' ``_send``)."""
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


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

            _send = _send_json

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


# -- a stub API server for running workloads (tests/kubernetes/test_deployment.py) ------------------

# group/version -> [(plural, kind, namespaced)]: what the jobqueue's backend and kubespawner use
CLUSTER_RESOURCES: dict[str, list[tuple[str, str, bool]]] = {
    "v1": [("pods", "Pod", True), ("services", "Service", True), ("secrets", "Secret", True),
           ("configmaps", "ConfigMap", True), ("events", "Event", True), ("nodes", "Node", False),
           ("persistentvolumeclaims", "PersistentVolumeClaim", True), ("namespaces", "Namespace", False)],
    "batch/v1": [("jobs", "Job", True)],
    "kubeflow.org/v2beta1": [("mpijobs", "MPIJob", True)],
}


def _selector_matches(labels: dict, selector: str) -> bool:
    """Equality-based label selectors (``a=b,c!=d,e``), as the API server reads them."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


class ClusterStub:
    """A stub Kubernetes API server that keeps state, for workloads that run for real.

    ``with ClusterStub(host, token) as api``: an HTTPS server (a self-signed certificate for
    ``host``, made with openssl) that answers a client configured as in a pod
    (``load_incluster_config``: the Service's address, the account's token and the CA) with
    what the jobqueue's Kubernetes backend and kubespawner call: discovery; create (409 when
    the name exists), get, list with a label selector, watch from a resourceVersion (each
    change of the store is an event, in order), delete (a Job's or MPIJob's pods with it,
    as the garbage collector would); the log of a pod's container (``logs``, a callback:
    the test's kubelet reads its container's). Every request must carry ``token``.

    It runs no controller and no kubelet: the test plays them through the Python API
    (:meth:`objects`, :meth:`put`, :meth:`set_status`, :meth:`delete`), and every change it
    makes reaches watchers as a MODIFIED event, as a status update through the API would.
    Nodes are given (:meth:`put`). A mock: no real API server can run here.
    """

    def __init__(self, host: str, token: str, workdir: Path, bind: str = "0.0.0.0"):
        import ssl
        import subprocess

        self.token = token
        self.version = 0
        self.store: dict[tuple[str, str, str, str], dict] = {}  # (group/version, plural, namespace, name) -> object
        self.events: list[tuple[int, str, str, str, str, dict]] = []  # (version, type, gv, plural, namespace, object)
        self.requests: list[tuple[str, str]] = []
        self.logs = lambda namespace, pod, container: None  # -> bytes, or None: not started
        self._cond = threading.Condition()
        self._closing = False
        self.ca = workdir / "ca.crt"
        key = workdir / "tls.key"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-days", "1", "-subj", "/CN=kubernetes", "-keyout", str(key), "-out", str(self.ca),
                        "-addext", f"subjectAltName=IP:{host},DNS:kubernetes.default.svc"],
                       check=True, capture_output=True)
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            _send = _send_json

            def _status(self, code: int, reason: str, message: str) -> None:
                self._send(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason,
                                  "code": code, "message": message})

            def _route(self):
                """(gv, plural, namespace, name, subresource) of the request path, or None."""
                parts = self.path.split("?", 1)[0].strip("/").split("/")
                if parts[0] == "api" and len(parts) >= 3:
                    gv, rest = parts[1], parts[2:]
                elif parts[0] == "apis" and len(parts) >= 4:
                    gv, rest = f"{parts[1]}/{parts[2]}", parts[3:]
                else:
                    return None
                namespace = ""
                if rest[0] == "namespaces" and len(rest) >= 3:
                    namespace, rest = rest[1], rest[2:]
                plural, name, sub = rest[0], (rest[1] if len(rest) > 1 else ""), (rest[2] if len(rest) > 2 else "")
                return gv, plural, namespace, name, sub

            def _query(self) -> dict:
                from urllib.parse import parse_qs

                return {k: v[-1] for k, v in parse_qs(self.path.partition("?")[2]).items()}

            def _authorised(self) -> bool:
                scheme, _, credential = (self.headers.get("Authorization") or "").partition(" ")
                if scheme.lower() == "bearer" and credential == stub.token:  # the scheme is case-insensitive
                    return True
                self._status(401, "Unauthorized", "Unauthorized")
                return False

            def do_GET(self):
                stub.requests.append(("GET", self.path))
                if not self._authorised():
                    return
                path = self.path.split("?", 1)[0].rstrip("/")
                if path == "/version":
                    return self._send(200, VERSION)
                if path == "/api":
                    return self._send(200, {"kind": "APIVersions", "versions": ["v1"]})
                if path == "/apis":
                    return self._send(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                        {"name": gv.split("/")[0], "versions": [{"groupVersion": gv, "version": gv.split("/")[1]}],
                         "preferredVersion": {"groupVersion": gv, "version": gv.split("/")[1]}}
                        for gv in CLUSTER_RESOURCES if "/" in gv]})
                route = self._route()
                if route is None:
                    return self._status(404, "NotFound", f"{path} not found")
                gv, plural, namespace, name, sub = route
                if not any(p == plural for p, _, _ in CLUSTER_RESOURCES.get(gv, ())):
                    return self._status(404, "NotFound", f"the server could not find the requested resource ({path})")
                query = self._query()
                if name and sub == "log":
                    if (gv, plural, namespace, name) not in stub.store:
                        return self._status(404, "NotFound", f'pods "{name}" not found')
                    data = stub.logs(namespace, name, query.get("container", ""))
                    if data is None:
                        return self._status(400, "BadRequest", f'container "{query.get("container")}" in pod '
                                                                f'"{name}" is waiting to start')
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if name:
                    obj = stub.store.get((gv, plural, namespace, name))
                    if obj is None:
                        return self._status(404, "NotFound", f'{plural} "{name}" not found')
                    return self._send(200, obj)
                selector = query.get("labelSelector", "")
                if query.get("watch") in ("true", "1"):
                    return self._watch(gv, plural, namespace, selector, int(query.get("resourceVersion") or 0),
                                       float(query.get("timeoutSeconds") or 60))
                kind = next(k for p, k, _ in CLUSTER_RESOURCES[gv] if p == plural)
                with stub._cond:
                    items = [o for (g, p, ns, _), o in sorted(stub.store.items())
                             if (g, p) == (gv, plural) and (not namespace or ns == namespace)
                             and _selector_matches(o["metadata"].get("labels") or {}, selector)]
                    version = stub.version
                self._send(200, {"kind": f"{kind}List", "apiVersion": gv, "metadata": {"resourceVersion": str(version)},
                                 "items": items})

            def _watch(self, gv, plural, namespace, selector, since, timeout):
                """Events after ``since``, one JSON line each, until ``timeout`` (then the stream ends)."""
                import time

                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Connection", "close")
                self.end_headers()
                deadline = time.monotonic() + timeout
                seen = since
                try:
                    while not stub._closing:
                        with stub._cond:
                            new = [e for e in stub.events if e[0] > seen]
                            if not new:
                                left = deadline - time.monotonic()
                                if left <= 0:
                                    return
                                stub._cond.wait(min(left, 0.5))
                                continue
                        for version, kind, g, p, ns, obj in new:
                            seen = version
                            if (g, p) == (gv, plural) and (not namespace or ns == namespace) and \
                                    _selector_matches(obj["metadata"].get("labels") or {}, selector):
                                self.wfile.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
                                self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return

            def _read(self) -> dict:
                return json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")

            def do_POST(self):
                stub.requests.append(("POST", self.path))
                if not self._authorised():
                    return
                route = self._route()
                body = self._read()
                if route is None or route[3]:
                    return self._status(405, "MethodNotAllowed", f"POST {self.path}")
                gv, plural, namespace, _, _ = route
                if namespace:
                    body.setdefault("metadata", {}).setdefault("namespace", namespace)
                if not body["metadata"].get("name") and body["metadata"].get("generateName"):
                    import secrets as _secrets

                    body["metadata"]["name"] = body["metadata"]["generateName"] + _secrets.token_hex(3)
                try:
                    created = stub.create(gv, plural, body)
                except KeyError:
                    return self._status(409, "AlreadyExists", f'{plural} "{body["metadata"]["name"]}" already exists')
                self._send(201, created)

            def do_DELETE(self):
                stub.requests.append(("DELETE", self.path))
                if not self._authorised():
                    return
                route = self._route()
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if route is None or not route[3]:
                    return self._status(405, "MethodNotAllowed", f"DELETE {self.path}")
                gv, plural, namespace, name, _ = route
                obj = stub.delete(gv, plural, namespace, name)
                if obj is None:
                    return self._status(404, "NotFound", f'{plural} "{name}" not found')
                self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})

        import ssl as _ssl

        self.server = ThreadingHTTPServer((bind, 0), Handler)
        self.server.daemon_threads = True
        context = _ssl.SSLContext(_ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.ca), str(key))
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.host, self.port = host, self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="cluster-stub")

    def __enter__(self) -> "ClusterStub":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self.server.shutdown()
        self.server.server_close()

    # -- the store, for the test's controllers -------------------------------------------------
    def _event(self, kind: str, gv: str, plural: str, obj: dict) -> dict:
        """(lock held) Number a change and queue its event."""
        import copy

        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        self.events.append((self.version, kind, gv, plural, obj["metadata"].get("namespace", ""), copy.deepcopy(obj)))
        self._cond.notify_all()
        return copy.deepcopy(obj)

    def create(self, gv: str, plural: str, obj: dict) -> dict:
        """Store a new object (KeyError: the name is taken)."""
        import copy
        import uuid
        from datetime import datetime, timezone

        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        kind = next(k for p, k, _ in CLUSTER_RESOURCES[gv] if p == plural)
        obj.setdefault("apiVersion", gv)
        obj.setdefault("kind", kind)
        key = (gv, plural, meta.get("namespace", ""), meta["name"])
        with self._cond:
            if key in self.store:
                raise KeyError(key)
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
            self.store[key] = obj
            return self._event("ADDED", gv, plural, obj)

    def put(self, gv: str, plural: str, obj: dict) -> dict:
        """Create or replace an object (a controller's or the kubelet's update)."""
        import copy

        obj = copy.deepcopy(obj)
        key = (gv, plural, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        with self._cond:
            if key not in self.store:
                return self.create(gv, plural, obj)
            self.store[key] = obj
            return self._event("MODIFIED", gv, plural, obj)

    def set_status(self, gv: str, plural: str, namespace: str, name: str, status: dict) -> dict | None:
        """Replace an object's status (the kubelet's or a controller's status update); None: gone."""
        with self._cond:
            obj = self.store.get((gv, plural, namespace, name))
            if obj is None:
                return None
            obj["status"] = status
            return self._event("MODIFIED", gv, plural, obj)

    def delete(self, gv: str, plural: str, namespace: str, name: str) -> dict | None:
        """Remove an object, and the pods it owns (the garbage collector's part); None: not there."""
        with self._cond:
            obj = self.store.pop((gv, plural, namespace, name), None)
            if obj is None:
                return None
            self._event("DELETED", gv, plural, obj)
            uid = obj["metadata"].get("uid")
            owned = [k for k, o in self.store.items() if k[:2] == ("v1", "pods")
                     and any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences") or ())]
            for key in owned:
                self._event("DELETED", "v1", "pods", self.store.pop(key))
            return obj

    def objects(self, gv: str, plural: str) -> list[dict]:
        import copy

        with self._cond:
            return [copy.deepcopy(o) for (g, p, _, _), o in sorted(self.store.items()) if (g, p) == (gv, plural)]
