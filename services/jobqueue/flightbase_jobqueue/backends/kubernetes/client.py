"""The one interface every Kubernetes API call of the backend goes through.

:class:`KubeClient` is a small Protocol: create, delete, list and watch, for
the few kinds the backend uses (:data:`KINDS`), and a pod's log.  Objects are plain dicts in
the API's own JSON shape (camelCase), both ways.  :class:`ApiKubeClient`
implements it over the official ``kubernetes`` Python client; the tests use
an in-memory fake (``tests/kubernetes/fakekube.py``) since no cluster can run
where they do.
"""

from __future__ import annotations

from typing import Iterator, Protocol

# kind -> (API group/version, plural, namespaced)
KINDS: dict[str, tuple[str, str, bool]] = {
    "Pod": ("v1", "pods", True),
    "Service": ("v1", "services", True),
    "Secret": ("v1", "secrets", True),
    "Node": ("v1", "nodes", False),
    "Job": ("batch/v1", "jobs", True),
    "MPIJob": ("kubeflow.org/v2beta1", "mpijobs", True),
}


class KubeError(Exception):
    """An API call failed; ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status


class KubeClient(Protocol):
    def create(self, obj: dict) -> dict:
        """Create ``obj`` in its ``metadata.namespace``; raise KubeError (409: it exists)."""
        ...

    def delete(self, kind: str, name: str, *, grace_seconds: int | None = None,
               propagation: str = "Background") -> None:
        """Delete one object; a missing object is not an error."""
        ...

    def list(self, kind: str, label_selector: str) -> tuple[list[dict], str]:
        """The objects of ``kind`` matching the selector, and the list's resourceVersion."""
        ...

    def watch(self, kind: str, label_selector: str, resource_version: str,
              timeout_seconds: int) -> Iterator[tuple[str, dict]]:
        """(ADDED|MODIFIED|DELETED, object) events after ``resource_version``; the
        stream ends after ``timeout_seconds``.  Raises KubeError when it breaks
        (410: the version is too old, list again)."""
        ...

    def pod_log(self, name: str, container: str) -> bytes:
        """The log of one container of a pod, from its start; KubeError (404: no such pod,
        400: the container has not started)."""
        ...


class ApiKubeClient:
    """:class:`KubeClient` over the official client, in one namespace (nodes are cluster-wide).

    Every call goes through ``ApiClient.call_api`` on the kind's REST path with
    ``_preload_content=False``, so objects stay plain JSON dicts (no model
    classes, and one code path for core kinds and the MPIJob custom resource).
    """

    def __init__(self, namespace: str, api_client=None):
        from kubernetes import client as k8s, config

        if api_client is None:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            api_client = k8s.ApiClient()
        self.namespace = namespace
        self.api = api_client

    def _path(self, kind: str, name: str | None = None) -> str:
        try:
            group_version, plural, namespaced = KINDS[kind]
        except KeyError:
            raise KubeError(f"kind {kind!r} is not one the backend uses") from None
        root = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
        path = f"{root}/namespaces/{self.namespace}/{plural}" if namespaced else f"{root}/{plural}"
        return f"{path}/{name}" if name else path

    def _call(self, method: str, path: str, *, body=None, query=None, stream: bool = False,
              timeout: float | None = None, raw: bool = False):
        import json

        from kubernetes.client.exceptions import ApiException

        headers = {"Accept": "*/*" if raw else "application/json", "Content-Type": "application/json"}
        try:
            if hasattr(self.api, "param_serialize"):  # kubernetes >= 37 (OpenAPI Generator 7's client)
                # call_api takes a serialised request and answers whatever status came, unread
                request = self.api.param_serialize(method, path, query_params=list((query or {}).items()),
                                                   header_params=headers, body=body, auth_settings=["BearerToken"])
                answer = self.api.call_api(*request, _request_timeout=timeout)
                if not 200 <= answer.status < 300:
                    answer.response.release_conn()
                    raise ApiException(status=answer.status, reason=answer.reason)
                resp = answer.response  # urllib3's response, its body not read yet
            else:  # kubernetes < 37
                resp = self.api.call_api(path, method, query_params=list((query or {}).items()), body=body,
                                         header_params=headers, auth_settings=["BearerToken"], _preload_content=False,
                                         _return_http_data_only=True, _request_timeout=timeout)
        except ApiException as exc:
            raise KubeError(f"{method} {path}: {exc.status} {exc.reason}", exc.status) from None
        except Exception as exc:  # connection refused, TLS, timeouts
            raise KubeError(f"{method} {path}: {exc}") from None
        if stream:
            return resp
        if raw:
            return resp.data or b""
        return json.loads(resp.data or b"{}")

    def create(self, obj: dict) -> dict:
        return self._call("POST", self._path(obj["kind"]), body=obj)

    def delete(self, kind: str, name: str, *, grace_seconds: int | None = None,
               propagation: str = "Background") -> None:
        body: dict = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        if grace_seconds is not None:
            body["gracePeriodSeconds"] = int(grace_seconds)
        try:
            self._call("DELETE", self._path(kind, name), body=body)
        except KubeError as exc:
            if exc.status != 404:
                raise

    def list(self, kind: str, label_selector: str) -> tuple[list[dict], str]:
        data = self._call("GET", self._path(kind), query={"labelSelector": label_selector} if label_selector else None)
        for item in data.get("items", []):
            item.setdefault("kind", kind)
        return data.get("items", []), data.get("metadata", {}).get("resourceVersion", "")

    def watch(self, kind: str, label_selector: str, resource_version: str,
              timeout_seconds: int) -> Iterator[tuple[str, dict]]:
        import json

        query = {"watch": "true", "timeoutSeconds": str(timeout_seconds), "allowWatchBookmarks": "false"}
        if label_selector:
            query["labelSelector"] = label_selector
        if resource_version:
            query["resourceVersion"] = resource_version
        # a read timeout beyond the server's own end of the watch catches a silently dead connection
        resp = self._call("GET", self._path(kind), query=query, stream=True, timeout=timeout_seconds + 30)
        try:
            for line in _lines(resp):
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object", {})
                    raise KubeError(f"watch {kind}: {status.get('message')}", int(status.get("code") or 0))
                yield event["type"], event["object"]
        except KubeError:
            raise
        except Exception as exc:  # the connection broke
            raise KubeError(f"watch {kind}: {exc}") from None
        finally:
            resp.release_conn()


    def pod_log(self, name: str, container: str) -> bytes:
        # GET .../pods/<name>/log (https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#read-log-of-the-specified-pod)
        return self._call("GET", self._path("Pod", name) + "/log", query={"container": container}, raw=True)


def _lines(resp) -> Iterator[bytes]:
    buffer = b""
    for chunk in resp.stream(4096, decode_content=True):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield line
