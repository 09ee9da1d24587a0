"""A deployment without a cluster: the chart rendered by Helm, its pods run as Docker containers.

1. **Render.** The real Helm engine (helm-sdkpy) installs the chart against the
   rendering stub API server (``stubapi.StubApi``), with Zero to JupyterHub
   4.2.0 as its dependency: ``fixtures/jupyterhub-4.2.0.tgz`` is z2jh's chart at
   its 4.2.0 tag (jupyterhub/zero-to-jupyterhub-k8s, BSD-3-Clause, its LICENSE
   inside), packaged as its release is (chart version and image tags set as
   chartpress sets them, ``values.schema.json`` made from ``values.schema.yaml``),
   since hub.jupyter.org cannot be reached here. So the hub and proxy pods, the
   hub's Secret (the services' API tokens, the proxy's token) and its ConfigMap
   (z2jh's ``jupyterhub_config.py``, which loads ``flightbase_server/hub/jupyterhub_config/kubernetes.py``)
   are Helm's too. Values of this test (``VALUES``): the bundled PostgreSQL and
   OCI registry on (the defaults); z2jh's image pullers and idle culler off (no
   DaemonSets run here; jupyterhub-idle-culler is not in the hub image); an
   administrator for z2jh's default (dummy) authenticator, with a password.
2. **Run.** Each workload's pod spec (a Deployment's or StatefulSet's
   template) runs as a container (``podrun``, the test's kubelet) on a Docker
   network whose aliases are the names of the Services that select it, with
   the rendered command, args, environment (config maps, secrets, field
   references, Service links, ``$(VAR)``), volumes (config maps, secrets,
   emptyDir, and each claim a folder of a temporary directory, owned by the
   pods' user and set-group-ID as an fsGroup makes it) and user. Every pod whose
   service account token is mounted (the jobqueue's, the hub's) gets what a
   kubelet gives it: ``KUBERNETES_SERVICE_HOST``/``PORT`` and the token, CA and
   namespace files, so that it reaches the cluster stub below with
   ``load_incluster_config``, over TLS. Each waits for its readiness probe.
3. **Use.** Through the proxy, as a person would: the administrator logs in
   with the hub's login form and makes an API token, creates a workspace and
   a person (with their own token); that person uploads a dataset (the
   registry's upload protocol) and submits a training that names it (jobqueue).
4. **Train.** The jobqueue's Kubernetes backend creates the training's Job on
   ``stubapi.ClusterStub``, an API server stub that keeps what is created and
   answers lists, watches, deletes and pod logs, and checks the token. The
   test plays the Job controller, scheduler and kubelet (:class:`JobController`):
   it makes the Job's pod on the one GPU node, runs it as a container of the
   training image with the claims' folders, and reports the pod's phases and
   exit code and the Job's conditions through the stub, so that the training
   reaches ``succeeded``; its output (the job's log, read through the API as
   the jobqueue kept it from the pod's log) shows the dataset's bytes.

Images: ``ghcr.io/flightbase/jobqueue``, ``registry-service`` and ``hub`` are
built here (``scripts/service-images.sh``, on the service base). The hub
(``images/hub/Dockerfile``: Debian's pycurl and ``flightbase_server/hub/jupyterhub_config/kubernetes.py``
in z2jh's ``jupyterhub_config.d``) differs from z2jh 4.2.0's k8s-hub image,
which its Dockerfile no longer starts from: JupyterHub 6.1 (Flightbase's pin)
where z2jh has 5.x, and neither jupyterhub-idle-culler nor z2jh's other
authenticators. The third-party images that cannot be pulled here run as
local stand-ins built by ``tests/kubernetes/images/build.sh``, cached by
content (each Dockerfile says what it stands in for and how it differs):
PostgreSQL (Debian's 15 for the chart's 16.4, with the official entrypoint's
POSTGRES_* variables and initdb.d scripts), the OCI registry (Debian's
docker-registry 2.8 with the official image's config file and entrypoint, so
the chart's REGISTRY_* variables apply as they do there), and
configurable-http-proxy 4.6.3 (from npm, on Debian's Node.js 18). The
training's ``ghcr.io/flightbase/training-base:0.1.0`` (a CUDA image, not
built here) runs as the embedded ``flightbase/training-base:0.1.0``.

What differs from a cluster (mocks, because none can run here): the API
server is a stub, and the test is the scheduler, Job controller and kubelet;
a Service is a DNS alias of its pods, so a Service port that differs from
its target port (z2jh's ``proxy-public``: 80 -> 8000) is not forwarded (the
test reaches the proxy on 8000; nothing in this flow uses ``proxy-public``);
probes other than readiness, resource limits, network policies and the
seccomp profile are not applied. No notebook server is spawned (kubespawner
would create its pod on the stub, which runs no pods of its own), and MPIJobs
are not run here (the multi-node launches are tested on their own).

Skips, with the reason, when not root, no Docker engine answers, or a base
image is missing. Run time here: about 2 minutes with the images built.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers.containers import network_gateway, why_no_containers

from .podrun import PodError, PodRunner, pod_template_of
from .stubapi import ClusterStub
from .chart import render_with_z2jh

helm = pytest.importorskip("helm_sdkpy", reason="helm-sdkpy is not installed (pip install --ignore-requires-python helm-sdkpy)")

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "flightbase"
Z2JH = Path(__file__).parent / "fixtures" / "jupyterhub-4.2.0.tgz"
ADMIN = "admin"
ADMIN_PASSWORD = secrets.token_hex(12)
# This test's values (the chart's defaults otherwise: PostgreSQL and the OCI registry bundled)
VALUES = {"jupyterhub": {
    # DaemonSets that pre-pull images onto nodes: there are no nodes to pull onto here
    "prePuller": {"hook": {"enabled": False}, "continuous": {"enabled": False}},
    # jupyterhub-idle-culler is not in the hub image (the jobqueue reclaims idle notebooks' GPUs itself)
    "cull": {"enabled": False},
    # z2jh's default authenticator (dummy), with an administrator and a shared password
    "hub": {"config": {"Authenticator": {"admin_users": [ADMIN], "allow_all": True},
                       "DummyAuthenticator": {"password": ADMIN_PASSWORD}}},
}}
# images that cannot be pulled here -> their local stand-ins (tests/kubernetes/images/build.sh)
STAND_INS = {
    "docker.io/library/postgres:16.4": "flightbase-test/postgres:16",
    "docker.io/library/registry:2.8.3": "flightbase-test/oci-registry:2.8",
    "quay.io/jupyterhub/configurable-http-proxy:4.6.3": "flightbase-test/chp:4.6.3",
    # the cluster's CUDA training image cannot be built here: the embedded flavour of it
    "ghcr.io/flightbase/training-base:0.1.0": "flightbase/training-base:0.1.0",
}
TRAINING_IMAGE = "flightbase/training-base:0.1.0"
# a training that reads the dataset it names, and says what it read
TRAIN = b"""import hashlib, os, pathlib
root = pathlib.Path(os.environ["FLIGHTBASE_DATASETS_DIR"]) / "d"
for path in sorted(p for p in root.rglob("*") if p.is_file()):
    print("read", path.relative_to(root), hashlib.sha256(path.read_bytes()).hexdigest(), flush=True)
print("loss=0.25")
"""


def _engine() -> str | None:
    """Why this test cannot run here, or None."""
    return why_no_containers(
        "the deployment test runs containers as the chart's users and chowns claim folders: run as root",
        {"flightbase/debian:bookworm": "scripts/containers.sh", TRAINING_IMAGE: "scripts/containers.sh"})


_WHY_NOT = _engine()
pytestmark = pytest.mark.skipif(_WHY_NOT is not None, reason=str(_WHY_NOT))


# -- 1. render --------------------------------------------------------------------------------
def render(tmp: Path) -> list[dict]:
    """The manifest Helm renders for the chart and its z2jh dependency, with VALUES."""
    return render_with_z2jh(tmp, VALUES, NAMESPACE)


def find(manifest: list[dict], kind: str, name: str) -> dict:
    return next(o for o in manifest if o["kind"] == kind and o["metadata"]["name"] == name)


# -- 4. the cluster's part: scheduler, Job controller and kubelet for the trainings' Jobs ---------
NODE = "gpu-node-1"


def gpu_node() -> dict:
    """The one GPU node the stub reports (what the NVIDIA device plugin and GPU Feature Discovery publish)."""
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE, "nvidia.com/gpu.product": "Stub-GPU",
                                                  "nvidia.com/gpu.count": "4"}},
            "spec": {},
            "status": {"allocatable": {"nvidia.com/gpu": "4", "cpu": "2", "memory": "8Gi"},
                       "conditions": [{"type": "Ready", "status": "True"}]}}


class JobController:
    """Plays the Job controller, the scheduler and the kubelet for the Jobs created on the stub.

    For each new ``batch/v1`` Job: its pod (the template's labels plus the controller's
    ``job-name`` and ``controller-uid``, owned by the Job) is created on the stub on the one
    node, run by ``podrun``, and its status reported through the stub as the kubelet
    reports it: Pending, Running with the container running, then Succeeded or Failed with the
    container's exit code (a pod podrun refuses: waiting with CreateContainerConfigError); the
    Job's status follows (``succeeded``/``failed``, a Complete or Failed condition). A pod
    deleted on the stub (the backend deletes the Job once it has the output) is removed.
    The containers' output is the stub's pod log. MPIJobs are not run here (the multi-node
    launches are tested on their own)."""

    def __init__(self, api: ClusterStub, runner: PodRunner):
        self.api, self.runner = api, runner
        self.jobs: dict[str, str] = {}  # Job uid -> its pod's name
        self.pods: dict[str, str] = {}  # pod name -> its Job's name
        self.done: set[str] = set()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="job-controller")
        api.logs = self._logs

    def __enter__(self) -> "JobController":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(30)

    def _logs(self, namespace: str, pod: str, container: str) -> bytes | None:
        running = self.runner.pods.get(pod)
        if running is None or not running.containers or (container and container not in running.containers):
            return None  # not started (yet): the API answers 400
        return self.runner.logs(running, container or None).encode()

    def _loop(self) -> None:
        while not self._stop.wait(0.3):
            try:
                self._step()
            except Exception as exc:  # noqa: BLE001 (kept for the test's message)
                self.errors.append(repr(exc))

    def _step(self) -> None:
        for job in self.api.objects("batch/v1", "jobs"):
            if job["metadata"]["uid"] not in self.jobs:
                self._start(job)
        present = {o["metadata"]["name"] for o in self.api.objects("v1", "pods")}
        for pod, job in list(self.pods.items()):
            if pod not in present:  # deleted on the stub: the kubelet stops it
                if pod in self.runner.pods:
                    self.runner.remove(pod)
                del self.pods[pod]
            elif pod not in self.done and pod in self.runner.pods:
                code = self.runner.exit_code(pod)
                if code is not None:
                    self._finished(pod, job, code)

    def _start(self, job: dict) -> None:
        meta = job["metadata"]
        name = f"{meta['name']}-{secrets.token_hex(3)[:5]}"
        self.jobs[meta["uid"]] = name
        template = pod_template_of(job)
        labels = {**template["metadata"].get("labels", {}), "batch.kubernetes.io/job-name": meta["name"],
                  "job-name": meta["name"], "batch.kubernetes.io/controller-uid": meta["uid"]}
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": meta["namespace"], "labels": labels,
                            "annotations": template["metadata"].get("annotations", {}),
                            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"],
                                                 "uid": meta["uid"], "controller": True}]},
               "spec": {**template["spec"], "nodeName": NODE},
               "status": {"phase": "Pending"}}
        self.api.create("v1", "pods", pod)
        self.pods[name] = meta["name"]
        container = template["spec"]["containers"][0]["name"]
        try:
            self.runner.run_pod(pod, name=name)
        except PodError as exc:
            self.api.set_status("v1", "pods", meta["namespace"], name, {"phase": "Pending", "containerStatuses": [
                {"name": container, "ready": False, "state": {"waiting": {"reason": "CreateContainerConfigError",
                                                                          "message": str(exc)}}}]})
            self.done.add(name)
            return
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.api.set_status("v1", "pods", meta["namespace"], name, {
            "phase": "Running", "startTime": now, "podIP": self.runner.ip(name),
            "containerStatuses": [{"name": container, "ready": True, "state": {"running": {"startedAt": now}}}]})
        self.api.set_status("batch/v1", "jobs", meta["namespace"], meta["name"], {"active": 1, "startTime": now})

    def _finished(self, pod: str, job: str, code: int) -> None:
        self.done.add(pod)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        obj = next(o for o in self.api.objects("v1", "pods") if o["metadata"]["name"] == pod)
        container = obj["spec"]["containers"][0]["name"]
        self.api.set_status("v1", "pods", NAMESPACE, pod, {
            "phase": "Succeeded" if code == 0 else "Failed", "containerStatuses": [
                {"name": container, "ready": False,
                 "state": {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                                          "finishedAt": now}}}]})
        condition = {"type": "Complete" if code == 0 else "Failed", "status": "True", "lastTransitionTime": now}
        self.api.set_status("batch/v1", "jobs", NAMESPACE, job,
                            {"succeeded" if code == 0 else "failed": 1, "completionTime": now, "conditions": [condition]})


# -- 2. the deployment ---------------------------------------------------------------------------
def claim_dirs(root: Path) -> dict[str, Path]:
    """A folder for each claim of the chart, as a volume the storage gives the pods' user: owned
    by the pod's user and fsGroup, group-writable and set-group-ID (the kubelet's fsGroup
    ownership), so that the subPath folders the kubelet makes in it are the group's too."""
    dirs = {}
    root.mkdir(parents=True)
    root.chmod(0o755)
    for claim, owner in (("flightbase-workspaces", 1000), ("flightbase-datasets", 1000), ("flightbase-oci", 1000),
                         ("hub-db-dir", 1000), ("data-flightbase-postgresql-0", 999)):
        path = root / claim
        path.mkdir()
        os.chown(path, owner, owner)
        path.chmod(0o2775)
        dirs[claim] = path
    return dirs


# the workloads in the order a cluster would get them ready: the databases, the proxy (the hub
# adds its routes at start), the hub (the services' tokens), the services
ORDER = [("StatefulSet", "flightbase-postgresql"), ("Deployment", "flightbase-oci"), ("Deployment", "proxy"),
         ("Deployment", "hub"), ("Deployment", "flightbase-registry"), ("Deployment", "flightbase-jobqueue")]


def start_workloads(runner: PodRunner, manifest: list[dict]) -> dict[str, str]:
    """Run each workload's pod and wait until its readiness probe passes; name -> pod name."""
    started = {}
    for kind, name in ORDER:
        obj = find(manifest, kind, name)
        assert obj["spec"].get("replicas", 1) == 1, (kind, name)
        pod = pod_template_of(obj)
        pod["metadata"]["namespace"] = NAMESPACE
        pod_name = f"{name}-0" if kind == "StatefulSet" else f"{name}-{hashlib.sha256(name.encode()).hexdigest()[:9]}-stub1"
        running = runner.run_pod(pod, name=pod_name)
        runner.wait_ready(running, timeout=120)
        started[name] = pod_name
    return started


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def login(proxy: str, user: str, password: str) -> httpx.Client:
    """A browser's session: the hub's login form (its _xsrf cookie sent back)."""
    client = httpx.Client(base_url=proxy, timeout=30)
    client.get("/hub/login")
    resp = client.post("/hub/login", data={"username": user, "password": password, "_xsrf": client.cookies.get("_xsrf")})
    assert resp.status_code == 302 and "jupyterhub-session-id" in client.cookies, (resp.status_code, resp.text[:500])
    return client


@pytest.fixture(scope="module")
def images():
    """The service images (scripts/service-images.sh) and the stand-ins (tests/kubernetes/images/build.sh), cached by content."""
    for cmd in (["scripts/service-images.sh", "build"], ["tests/kubernetes/images/build.sh"]):
        result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)
        assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


def test_a_person_trains_on_a_dataset_through_the_rendered_deployment(images, tmp_path):
    manifest = render(tmp_path / "render")
    data = tmp_path / "claims"
    token = secrets.token_hex(24)
    with PodRunner(namespace=NAMESPACE, host_dirs=claim_dirs(data), images=STAND_INS, enforce_limits=False) as runner:
        gateway = network_gateway(runner.network)
        # the API server on the host, at its address on the network (the pods reach it there)
        with ClusterStub(gateway, token, tmp_path, bind=gateway) as api, JobController(api, runner) as controller:
            api.put("v1", "nodes", gpu_node())
            runner.api_server = {"host": gateway, "port": api.port, "token": token, "ca": api.ca.read_bytes()}
            runner.add_objects(manifest)
            try:
                pods = start_workloads(runner, manifest)
                proxy = f"http://{runner.ip(pods['proxy'])}:8000"
                run_the_flow(proxy, api, controller, runner, pods)
            except BaseException:
                for name in runner.pods:
                    print(f"--- {name}\n{runner.logs(name)[-4000:]}")
                raise


def run_the_flow(proxy: str, api: ClusterStub, controller: JobController, runner: PodRunner, pods: dict) -> None:
    # the hub adds a service's route once the service answers (it checks every few seconds)
    deadline = time.monotonic() + 120
    for service in ("jobqueue", "registry"):
        while httpx.get(f"{proxy}/services/{service}/health", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, f"no route to the {service} through the proxy"
            time.sleep(0.5)

    # the administrator logs in and makes an API token, as on the hub's token page
    browser = login(proxy, ADMIN, ADMIN_PASSWORD)
    try:
        resp = browser.post(f"/hub/api/users/{ADMIN}/tokens", json={"note": "deployment test", "expires_in": 3600},
                            headers={"X-XSRFToken": browser.cookies.get("_xsrf")})
        assert resp.status_code == 201, resp.text
        admin = resp.json()["token"]
    finally:
        browser.close()

    def call(method: str, path: str, token: str, **kw) -> httpx.Response:
        return httpx.request(method, f"{proxy}{path}", headers={"Authorization": f"token {token}", **kw.pop("headers", {})},
                             timeout=60, **kw)

    # a workspace and a person in it, with the person's own token
    resp = call("POST", "/services/jobqueue/api/v1/workspaces", admin, json={"name": "vision", "settings": {"gpu_quota": 4}})
    assert resp.status_code == 201, resp.text
    assert call("POST", "/hub/api/users/alice", admin).status_code == 201
    resp = call("POST", "/hub/api/users/alice/tokens", admin, json={"note": "alice"})
    assert resp.status_code == 201, resp.text
    alice = resp.json()["token"]
    assert call("PUT", "/services/jobqueue/api/v1/workspaces/vision/members/alice", admin).status_code == 200

    # alice uploads a dataset (the registry's upload protocol, through the proxy)
    files = {"train.csv": b"x,y\n1,2\n3,4\n" * 100, "labels/names.txt": b"cat\ndog\n"}
    registry = "/services/registry/api/v1/workspaces/vision/datasets"
    assert call("POST", registry, alice, json={"name": "d"}).status_code == 201
    up = call("POST", f"{registry}/d/uploads", alice,
              json={"files": [{"path": p, "size": len(b), "sha256": sha(b), "extract": False} for p, b in files.items()]})
    assert up.status_code == 201, up.text
    upload = up.json()["id"]
    for i, body in enumerate(files.values()):
        resp = call("PATCH", f"{registry}/d/uploads/{upload}/files/{i}", alice, params={"offset": 0}, content=body,
                    headers={"Content-Type": "application/octet-stream"})
        assert resp.status_code == 200, resp.text
    version = call("POST", f"{registry}/d/uploads/{upload}/commit", alice)
    assert version.status_code == 201 and version.json()["version"] == 1, version.text

    # ... and submits a training that names it
    code = call("POST", "/services/jobqueue/api/v1/code", alice, params={"workspace": "vision", "filename": "train.py"},
                content=TRAIN)
    assert code.status_code == 201, code.text
    resp = call("POST", "/services/jobqueue/api/v1/trainings", alice, json={
        "workspace": "vision", "name": "read-d", "entrypoint": "train.py", "code_id": code.json()["id"], "gpus": 1,
        "datasets": ["d"]})
    assert resp.status_code == 201, resp.text
    training = resp.json()
    job_id = training["jobs"][0]["id"]

    deadline = time.monotonic() + 180
    while True:
        state = call("GET", f"/services/jobqueue/api/v1/trainings/{training['id']}", alice).json()
        if state["state"] in ("succeeded", "failed", "cancelled"):
            break
        assert time.monotonic() < deadline, f"the training stayed {state['state']}: {state}; controller: {controller.errors}"
        time.sleep(0.5)
    job = call("GET", f"/services/jobqueue/api/v1/jobs/{job_id}", alice).json()
    out = call("GET", f"/services/jobqueue/api/v1/jobs/{job_id}/logs", alice).text
    assert state["state"] == "succeeded", (state, job, out, controller.errors)
    assert job["exit_code"] == 0 and job["hosts"] == [NODE], job

    # the backend made one Job on the stub (through the API, as the jobqueue's service account):
    # the built-in image from images.registry, the dataset's version mounted read-only from its claim
    created = [path for method, path in api.requests if method == "POST"]
    assert [p.rsplit("/", 1)[1] for p in created] == ["jobs"], created
    (made,) = [obj for _, kind, _, plural, _, obj in api.events if (kind, plural) == ("ADDED", "jobs")]
    spec = made["spec"]["template"]["spec"]
    assert spec["containers"][0]["image"] == "ghcr.io/flightbase/training-base:0.1.0"
    mounts = {m["mountPath"]: m for m in spec["containers"][0]["volumeMounts"]}
    assert (mounts["/datasets/d"]["subPath"], mounts["/datasets/d"]["readOnly"]) == ("vision/d/1", True)
    claims = {v["name"]: v.get("persistentVolumeClaim", {}).get("claimName") for v in spec["volumes"]}
    assert (claims["datasets"], claims["workspace"]) == ("flightbase-datasets", "flightbase-workspaces")
    # its output, kept by the jobqueue from the pod's log: the dataset's files, byte for byte
    for path, body in files.items():
        assert f"read {path} {sha(body)}" in out, out
    assert "loss=0.25" in out
    # the Job and its pod were deleted once the output was kept, and the container with them
    assert api.objects("batch/v1", "jobs") == [] and api.objects("v1", "pods") == []
    deadline = time.monotonic() + 10
    while list(controller.pods) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not controller.pods and set(runner.pods) == set(pods.values())
    assert controller.errors == []
