"""Multi-node launches across network namespaces: a 2-node Horovod MPIJob and a 2-node
torchrun indexed Job, rendered by the jobqueue's real Kubernetes backend
(``flightbase_jobqueue.backends.kubernetes.objects``), run as one container per pod.

No cluster can run here, so the controllers are stood in for, and the kubelet
by ``tests/kubernetes/podrun.py`` (one Docker container per pod on one Docker
network: each pod has its own network namespace, address and hostname, as pods
on different nodes have).  What each controller adds to the rendered objects is
emulated here as its source does it:

- **The Job controller** (``completionMode: Indexed``, Kubernetes >= 1.24) makes
  pod ``i`` with the annotation ``batch.kubernetes.io/job-completion-index: i``
  (which the rendered env reads with a ``fieldRef``) and ``hostname: <job>-<i>``;
  the template's ``subdomain`` is the rendered headless Service, so pod 0 is
  ``<job>-0.<job>`` (the torchrun ``--master-addr`` the backend renders).
- **The MPI Operator v2** (kubeflow/mpi-operator ``pkg/controller/mpi_job_controller.go``,
  ``newSSHAuthSecret``, ``newConfigMap``, ``newWorker``, ``newLauncherPodTemplate``,
  ``setupSSHOnPod``) makes:
  a Secret ``<job>-ssh`` with an ECDSA P-521 key (``ssh-privatekey``, PEM
  ``EC PRIVATE KEY``) and its ``ssh-publickey``, mounted in every pod at
  ``sshAuthMountPath`` as ``id_rsa``, ``id_rsa.pub`` and ``authorized_keys``
  (default mode: it is not ``/root/.ssh``);
  a ConfigMap ``<job>-config`` whose ``hostfile`` lists
  ``<job>-worker-<i>.<job>.<namespace>.svc slots=<slotsPerWorker>``, mounted on
  the launcher at ``/etc/mpi`` (mode 0444);
  a headless Service ``<job>`` selecting the job's pods (their subdomain);
  worker pods ``<job>-worker-<i>`` (hostname = name, subdomain = job,
  ``K_MPI_JOB_ROLE=worker``) and the launcher ``<job>-launcher`` with
  ``K_MPI_JOB_ROLE=launcher``, ``OMPI_MCA_orte_keep_fqdn_hostnames=true``,
  ``OMPI_MCA_orte_default_hostfile=/etc/mpi/hostfile``,
  ``OMPI_MCA_plm_rsh_args=-o ConnectionAttempts=10``,
  ``OMPI_MCA_orte_set_default_slots=<slots>`` and empty ``NVIDIA_VISIBLE_DEVICES`` /
  ``NVIDIA_DRIVER_CAPABILITIES``; with ``launcherCreationPolicy: WaitForWorkersReady``
  the launcher starts once the workers run (no readiness probe: running is ready).
  v2 sets no ``OMPI_MCA_plm_rsh_agent``: mpirun starts its daemons with plain
  ``ssh`` (v1's ``kubectl exec`` agent is gone).
- **Cluster DNS**: the network aliases ``<hostname>.<subdomain>[.<ns>.svc.cluster.local]``.

The image: the cluster's own ``images/training-base/Dockerfile``, built here in its
CPU flavour (build arguments: Debian 12, CPU torch, Horovod with MPI and no NCCL;
``tests/kubernetes/cluster_images.py``, ``tests/kubernetes/images/build.sh``), cached
by the digest of its context and build arguments (``scripts/lib/images.sh``'s
``build_image``; the first build compiles Horovod, 15 to 30 minutes on 2 cores, later
runs find the image up to date in seconds): the same OpenMPI 4.1 package line, SSH
set-up and user as the CUDA flavour.  CPU only, one rank per node: Horovod's ops over
MPI (TCP), torchrun's over gloo.

The training scripts are the launcher tests' (``tests/launchers/scripts``): each
rank allreduces ``rank + 1`` and trains a tiny model data-parallel; the test
reads every rank's result line from the pod logs and checks the sums, that the
ranks agree, and that they ran on different hosts (the pods' hostnames).

Skips, with the reason, without root, a Docker engine, or the Debian base image.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from flightbase_jobqueue.backends.kubernetes.objects import KubeLaunchSpec, make_objects
from flightbase_jobqueue.backends.kubernetes.settings import KubernetesSettings
from tests.kubernetes.cluster_images import build
from tests.kubernetes.podrun import PodRunner, pod_template_of

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "tests" / "launchers" / "scripts"
RENDERED_IMAGE = "registry.example/flightbase/training-base:0.1.0"  # what the backend renders (any name)
MARK = "FLIGHTBASE-RESULT "
NAMESPACE = "flightbase"
SETTINGS = KubernetesSettings(namespace=NAMESPACE, shm_size="256Mi")
MPI_CONFIG_DIR = "/etc/mpi"
HOST_MARK = "FLIGHTBASE-HOST "
# The training's entrypoint: says which host the rank runs on (its container's hostname),
# then runs the launcher test's script in the same process.  Under torchrun it also
# works around a teardown race of PyTorch's gloo process group between hosts: a rank
# that destroys its group while its peer still tears down may abort in a C++
# destructor ("terminate called without an active exception", SIGABRT) after all its
# work is done, which would fail the pod.  So the ranks meet at a barrier before
# destroying the group, and leave without running the interpreter's exit handlers.
ON_HOST = f"""import json, os, runpy, socket, sys
rank = os.environ.get("OMPI_COMM_WORLD_RANK") or os.environ.get("RANK")
os.write(1, ({HOST_MARK!r} + json.dumps({{"rank": int(rank), "host": socket.gethostname()}}) + "\\n").encode())
torchrun = "TORCHELASTIC_RUN_ID" in os.environ
if torchrun:
    import torch.distributed as dist
    destroy = dist.destroy_process_group
    def destroy_after_barrier(*args, **kwargs):
        dist.barrier()
        destroy(*args, **kwargs)
    dist.destroy_process_group = destroy_after_barrier
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
if torchrun:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
"""


# -- the image -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def image():
    return build("training-base")


# -- the job ---------------------------------------------------------------------------------
def launch_spec(launcher: str, script: str, job_id: str) -> KubeLaunchSpec:
    return KubeLaunchSpec(job_id=job_id, training_id="t-multinode", workspace="vision", user="alice",
                          launcher=launcher, entrypoint="on_host.py", args=(script,), image=RENDERED_IMAGE,
                          env={"OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"})


def workspace_claim(tmp_path: Path, spec: KubeLaunchSpec) -> Path:
    """The workspaces PVC's folder, with the training's code where the backend stages it
    (``<workspace>/trainings/<id>/code``), writable by the pods' user."""
    claim = tmp_path / "workspaces"
    code = claim / spec.workspace / "trainings" / spec.training_id / "code"
    code.mkdir(parents=True)
    for script in ("common.py", "hvd_allreduce.py", "torch_allreduce.py"):
        shutil.copy2(SCRIPTS / script, code / script)
    (code / "on_host.py").write_text(ON_HOST)
    for path in [claim, *claim.rglob("*")]:
        os.chown(path, SETTINGS.run_as_user, SETTINGS.run_as_group)
    return claim


def results_of(text: str, mark: str = MARK) -> dict[int, dict]:
    """The ranks' result (or host) lines, by rank (a rank reporting twice is an error)."""
    results: dict[int, dict] = {}
    for line in text.splitlines():
        if mark in line:
            rec = json.loads(line.split(mark, 1)[1])
            assert rec["rank"] not in results, f"rank {rec['rank']} reported twice:\n{text[-4000:]}"
            results[rec["rank"]] = rec
    return results


def check_allreduce(results: dict[int, dict], out: str, world: int = 2) -> None:
    assert sorted(results) == list(range(world)), f"expected ranks 0..{world - 1}, got {sorted(results)}:\n{out[-5000:]}"
    expected = float(sum(r + 1 for r in range(world)))  # rank r contributes r + 1: 1 + 2 == 3
    for rec in results.values():
        assert rec["size"] == world, rec
        assert rec["sum"] == [expected] * 3, rec
        assert rec["avg"] == pytest.approx([expected / world] * 3), rec
        assert rec["ranks"] == list(range(world)), rec
        assert rec["max_diff_ranks"] < 1e-6, rec  # data-parallel: every rank ends with the same weights
        assert rec["max_diff_ref"] < 1e-5, rec
    assert results[0]["losses"] != results[1]["losses"]  # each rank trained on its own data


def wait_all(runner: PodRunner, pods, timeout: float) -> dict[str, int]:
    """Exit codes by pod once every pod ended (a failed one ends the wait early)."""
    deadline = time.monotonic() + timeout
    codes: dict[str, int] = {}
    while len(codes) < len(pods):
        for pod in pods:
            if pod.name not in codes:
                code = runner.exit_code(pod)
                if code is not None:
                    codes[pod.name] = code
        if any(codes.values()) or time.monotonic() > deadline:
            break
        time.sleep(1)
    return codes


def logs_of(runner: PodRunner, pods) -> str:
    return "\n".join(f"--- {p.name} ({p.hostname}):\n{runner.logs(p)[-4000:]}" for p in pods)


# -- torchrun: the Job controller's indexed pods -------------------------------------------------
def test_torchrun_indexed_job_on_two_hosts(image, tmp_path):
    spec = launch_spec("torchrun", "torch_allreduce.py", "mn-torchrun")
    objects = make_objects(spec, SETTINGS, {"node-a": (0,), "node-b": (0,)})
    service, job = objects
    assert (service["kind"], job["kind"], job["spec"]["completionMode"]) == ("Service", "Job", "Indexed")
    name = job["metadata"]["name"]
    template = pod_template_of(job)
    assert template["spec"]["subdomain"] == service["metadata"]["name"] == name
    claim = workspace_claim(tmp_path, spec)
    with PodRunner(namespace=NAMESPACE, images={RENDERED_IMAGE: image},
                   host_dirs={SETTINGS.workspaces_pvc: claim}) as runner:
        runner.add_objects(objects)
        pods = []
        for index in range(job["spec"]["completions"]):
            # what the Job controller sets on pod i of an indexed Job
            pods.append(runner.run_pod(
                template, name=f"{name}-{index}-x{index}", hostname=f"{name}-{index}",
                annotations={"batch.kubernetes.io/job-completion-index": str(index)},
                labels={"batch.kubernetes.io/job-completion-index": str(index), "job-name": name}))
        codes = wait_all(runner, pods, timeout=240)
        out = logs_of(runner, pods)
        assert codes == {p.name: 0 for p in pods}, f"exit codes {codes}:\n{out}"
    results = results_of(out)
    check_allreduce(results, out)
    assert all(rec["backend"] == "gloo" and rec["local_rank"] == 0 for rec in results.values()), results
    # one rank per pod, each on its own host: rank i ran in pod i (node rank = completion index)
    hosts = {rank: rec["host"] for rank, rec in results_of(out, HOST_MARK).items()}
    assert hosts == {index: pod.hostname for index, pod in enumerate(pods)}, out
    assert hosts == {0: f"{name}-0", 1: f"{name}-1"}


# -- Horovod: the MPI Operator's launcher and workers ------------------------------------------
def operator_objects(mpijob: dict, tmp_path: Path) -> tuple[dict, dict, dict]:
    """The SSH Secret, hostfile ConfigMap and headless Service the operator makes for an MPIJob."""
    name, ns = mpijob["metadata"]["name"], mpijob["metadata"]["namespace"]
    key = tmp_path / "key"
    # newSSHAuthSecret: ECDSA P-521, private key PEM "EC PRIVATE KEY", public key in authorized_keys form
    subprocess.run(["openssl", "ecparam", "-name", "secp521r1", "-genkey", "-noout", "-out", str(key)], check=True,
                   capture_output=True)
    private = key.read_text()
    assert private.startswith("-----BEGIN EC PRIVATE KEY-----")
    public = subprocess.run(["ssh-keygen", "-y", "-f", str(key)], check=True, capture_output=True, text=True).stdout
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/ssh-auth",
              "metadata": {"name": f"{name}-ssh", "namespace": ns},
              "stringData": {"ssh-privatekey": private, "ssh-publickey": public}}
    slots = mpijob["spec"]["slotsPerWorker"]
    replicas = mpijob["spec"]["mpiReplicaSpecs"]["Worker"]["replicas"]
    hostfile = "".join(f"{name}-worker-{i}.{name}.{ns}.svc slots={slots}\n" for i in range(replicas))
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{name}-config", "namespace": ns},
              "data": {"hostfile": hostfile}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
               "spec": {"clusterIP": "None", "selector": {"training.kubeflow.org/operator-name": "mpi-operator",
                                                          "training.kubeflow.org/job-name": name}}}
    return secret, config, service


def operator_pod(mpijob: dict, role: str, index: int | None = None) -> dict:
    """A launcher or worker pod as the operator derives it from the MPIJob's template."""
    name = mpijob["metadata"]["name"]
    pod = pod_template_of(mpijob, "Launcher" if role == "launcher" else "Worker")
    pod["metadata"]["labels"].update({"training.kubeflow.org/operator-name": "mpi-operator",
                                      "training.kubeflow.org/job-name": name, "training.kubeflow.org/job-role": role})
    spec, container = pod["spec"], pod["spec"]["containers"][0]
    spec["subdomain"] = name
    if role == "worker":
        pod["metadata"]["labels"]["training.kubeflow.org/replica-index"] = str(index)
        spec["hostname"] = pod["metadata"]["name"] = f"{name}-worker-{index}"
        container["env"].append({"name": "K_MPI_JOB_ROLE", "value": "worker"})
    else:
        spec["hostname"] = pod["metadata"]["name"] = f"{name}-launcher"
        container["env"] += [
            {"name": "K_MPI_JOB_ROLE", "value": "launcher"},
            {"name": "OMPI_MCA_orte_keep_fqdn_hostnames", "value": "true"},
            {"name": "OMPI_MCA_orte_default_hostfile", "value": f"{MPI_CONFIG_DIR}/hostfile"},
            {"name": "OMPI_MCA_plm_rsh_args", "value": "-o ConnectionAttempts=10"},
            {"name": "OMPI_MCA_orte_set_default_slots", "value": str(mpijob["spec"]["slotsPerWorker"])},
            {"name": "NVIDIA_VISIBLE_DEVICES"}, {"name": "NVIDIA_DRIVER_CAPABILITIES"},
        ]
        spec["volumes"].append({"name": "mpi-job-config", "configMap": {"name": f"{name}-config", "items": [
            {"key": "hostfile", "path": "hostfile", "mode": 0o444}]}})
        container["volumeMounts"].append({"name": "mpi-job-config", "mountPath": MPI_CONFIG_DIR})
    # setupSSHOnPod: the key Secret at sshAuthMountPath (default mode unless it is /root/.ssh)
    ssh_mount = mpijob["spec"]["sshAuthMountPath"]
    spec["volumes"].append({"name": "ssh-auth", "secret": {
        "secretName": f"{name}-ssh", **({"defaultMode": 0o600} if ssh_mount == "/root/.ssh" else {}),
        "items": [{"key": "ssh-privatekey", "path": "id_rsa"}, {"key": "ssh-publickey", "path": "id_rsa.pub"},
                  {"key": "ssh-publickey", "path": "authorized_keys"}]}})
    container["volumeMounts"].append({"name": "ssh-auth", "mountPath": ssh_mount})
    spec["restartPolicy"] = mpijob["spec"]["mpiReplicaSpecs"]["Launcher" if role == "launcher" else "Worker"]["restartPolicy"]
    return pod


def test_horovod_mpijob_on_two_hosts(image, tmp_path):
    spec = launch_spec("horovod", "hvd_allreduce.py", "mn-horovod")
    (mpijob,) = make_objects(spec, SETTINGS, {"node-a": (0,), "node-b": (0,)})
    assert mpijob["kind"] == "MPIJob" and mpijob["spec"]["mpiReplicaSpecs"]["Worker"]["replicas"] == 2
    assert mpijob["spec"]["launcherCreationPolicy"] == "WaitForWorkersReady"
    claim = workspace_claim(tmp_path, spec)
    with PodRunner(namespace=NAMESPACE, images={RENDERED_IMAGE: image},
                   host_dirs={SETTINGS.workspaces_pvc: claim}) as runner:
        runner.add_objects([*operator_objects(mpijob, tmp_path)])
        workers = [runner.run_pod(operator_pod(mpijob, "worker", i)) for i in range(2)]
        for worker in workers:  # WaitForWorkersReady: no readiness probe, so ready = running; ssh's
            runner.wait_ready(worker, timeout=60)  # ConnectionAttempts=10 covers sshd's start
        launcher = runner.run_pod(operator_pod(mpijob, "launcher"))
        codes = wait_all(runner, [launcher], timeout=240)
        out = logs_of(runner, [launcher, *workers])
        assert codes == {launcher.name: 0}, f"launcher exit {codes}:\n{out}"
    results = results_of(out)
    check_allreduce(results, out)
    # --tag-output: "[1,<rank>]<stdout>:" before each line; Horovod over MPI (no gloo in this build)
    for rank, rec in results.items():
        assert rec["gloo_enabled"] is False, rec
        assert re.search(rf"^\[1,{rank}\]<stdout>:{MARK}", out, re.M), out
    # the ranks ran on the two workers (mpirun placed them by the hostfile, over ssh), not on the launcher
    hosts = {rank: rec["host"] for rank, rec in results_of(out, HOST_MARK).items()}
    assert hosts == {0: workers[0].hostname, 1: workers[1].hostname}, out
