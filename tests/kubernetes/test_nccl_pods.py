"""A Kubernetes job's NCCL log, written by a real container through the rendered mount (issue #20).

The jobqueue's real Kubernetes backend renders and "creates" a one-pod Job
(``fakekube.FakeKube`` stands in for the API server: no cluster can run here)
and makes the run's NCCL folder on the workspaces claim; the kubelet's part is
played by ``podrun.PodRunner``: the rendered pod runs as a Docker container of
``flightbase/debian:bookworm`` as uid 1000, with the claim's sub-paths bound as
the kubelet binds them.  No GPU and no NCCL here: the training (a shell
script, the training's staged code) writes lines of NCCL's format
(``tests/fixtures/nccl/README.md``) to ``$NCCL_DEBUG_FILE`` with ``%h`` and
``%p`` expanded as NCCL expands them (``src/debug.cc``).  What is checked for
real: the pod's environment, that its user can write the folder the jobqueue
made, that the file lands where the jobqueue reads, and the record it gives.
Skips, with the reason, without root, a Docker engine or the image.
"""

from __future__ import annotations


import pytest

from flightbase_jobqueue import comms
from flightbase_jobqueue.backends.kubernetes import KubeLaunchSpec, KubernetesBackend, KubernetesSettings
from flightbase_jobqueue.backends.spec import JobRef
from flightbase_jobqueue.scheduling.types import Job

from tests.helpers.containers import image_or_skip

from .fakekube import FakeKube
from .podrun import PodRunner, pod_template_of

BASE = "flightbase/debian:bookworm"
RENDERED = "registry.example/training-base:1"

TRAINING = r"""#!/bin/bash
set -eu
file=${NCCL_DEBUG_FILE//%h/$(hostname)}
file=${file//%p/$$}
p="$(hostname):$$:$$ [0] NCCL INFO"
{
  echo "$p NCCL version 2.21.5+cuda12.4"
  echo "$p NET/IB : No device found."
  echo "$p Using network Socket"
  echo "$p Channel 00/0 : 0[0] -> 1[0] [send] via NET/Socket/0"
  echo "$p Channel 00/0 : 1[0] -> 0[0] [receive] via NET/Socket/0"
} > "$file"
echo "debug=$NCCL_DEBUG subsys=$NCCL_DEBUG_SUBSYS wrote=$file"
"""


@pytest.fixture(scope="module")
def base_image():
    return image_or_skip(BASE)


def test_a_pod_writes_nccl_logs_where_the_jobqueue_reads_them(tmp_path, base_image):
    claim, data = tmp_path / "claim", tmp_path / "data"
    # the chart's layout: the jobqueue sees the claim at <data_dir>/workspaces and the claim's
    # .flightbase/jobs at <data_dir>/jobs (links stand in for its two mounts of the one claim)
    (data / "jobs").mkdir(parents=True)
    (claim / ".flightbase").mkdir(parents=True)
    (claim / ".flightbase" / "jobs").symlink_to(data / "jobs")
    (data / "workspaces").symlink_to(claim)
    code = tmp_path / "upload"
    code.mkdir()
    (code / "train.sh").write_text(TRAINING)
    (code / "train.sh").chmod(0o755)

    kube = FakeKube()
    backend = KubernetesBackend(kube, lambda job_id: KubeLaunchSpec(
        job_id=job_id, training_id="t1", workspace="vision", user="alice", launcher="none", entrypoint="train.sh",
        image=RENDERED, code_dir=code, gpudirect_rdma=True), KubernetesSettings(), data_dir=data)
    backend.start(Job(id="0123abcd4567ef89", workspace="vision", gpus=1), {"gpu-a": (0,)})
    (obj,) = kube.objects.values()
    with PodRunner(namespace="flightbase", images={RENDERED: base_image},
                   host_dirs={"flightbase-workspaces": claim}) as runner:
        running = runner.run_pod(pod_template_of(obj), name="fb-0123abcd4567ef89-x7k2p")
        code_ = runner.wait(running, timeout=60)
        out = runner.logs(running)
    assert code_ == 0, out
    # the user's output has no NCCL line: only what the training printed about it
    prefix = f"debug=INFO subsys=GRAPH,INIT,NET wrote=/flightbase/nccl/{running.hostname}."
    assert out.strip().startswith(prefix) and out.strip().endswith(".log"), out

    logs = backend.nccl_logs(JobRef("0123abcd4567ef89", "vision", "t1"))
    (name,) = logs
    assert "/flightbase/nccl/" + name == out.strip()[len("debug=INFO subsys=GRAPH,INIT,NET wrote="):]
    folder = data / "jobs" / "0123abcd4567ef89" / "nccl" / "0"
    assert (folder / name).stat().st_uid == 1000  # written by the pod's user, in the folder the jobqueue made
    record = comms.record_for(logs, p2p=False, rdma=True, gpu_kind="gpu", gpus=1, hosts=1)
    assert (record["source"], record["network"], record["summary"]) == ("nccl", "Socket", {"NET/Socket": 2})
