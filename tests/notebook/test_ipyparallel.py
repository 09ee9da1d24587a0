"""An ipyparallel cluster whose engines are one Flightbase job, driven from a real kernel.

Nothing is mocked: the controller runs in the kernel, the engines run as a
2-slot job of the real jobqueue under ``horovodrun --gloo``, and a ``%%px``
cell does a Horovod allreduce across them.
"""

from __future__ import annotations

import re

import pytest

from tests.platform.world import wait_state

from tests.helpers.notebooks import errors, text

pytestmark = pytest.mark.slow

START = """
import ipyparallel as ipp
cluster = ipp.Cluster(engine_launcher_class="flightbase", n=2, engine_timeout=240)
rc = cluster.start_and_connect_sync(activate=True)
print("engines", len(rc.ids), "job", cluster.engines[next(iter(cluster.engines))].job_id)
"""

ALLREDUCE = """%%px
import torch
import horovod.torch as hvd
hvd.init()
summed = hvd.allreduce(torch.tensor([float(hvd.rank() + 1)]), op=hvd.Sum).item()
size = hvd.size()
"""


def test_px_allreduce_across_engines_of_one_job(platform, person, notebook):
    with notebook() as nb:
        started = nb.run(START)
        assert not errors(started), started["outputs"]
        engines, job_id = re.search(r"^engines (\d+) job (\w+)$", text(started, "stdout"), re.M).groups()
        assert engines == "2"

        job = platform.api("jobqueue", "GET", f"jobs/{job_id}", person.token).json()
        assert job["state"] == "running" and job["gpus"] == 2 and job["workspace"] == person.workspace
        assert len(job["placement"]["local"]) == 2  # the scheduler counts one slot per engine

        px = nb.run(ALLREDUCE)
        assert not errors(px), px["outputs"]
        pulled = nb.run('print(sorted(rc[:].pull("summed", block=True)), rc[:].pull("size", block=True))')
        assert text(pulled).strip() == "[3.0, 3.0] [2, 2]"

        # still one job, still running, while the cluster is up
        assert platform.api("jobqueue", "GET", f"jobs/{job_id}", person.token).json()["state"] == "running"

        stopped = nb.run("cluster.stop_cluster_sync()")
        assert not errors(stopped), stopped["outputs"]
        assert platform.api("jobqueue", "GET", f"jobs/{job_id}", person.token).json()["state"] == "cancelled"
    assert wait_state(platform, person.token, f"jobs/{job_id}")["state"] == "cancelled"
