"""The SRTF reference on nodes (``srtf_reference(..., gpus_per_node=G)``, used by
benchmarks/node_srtf_bench.py; #17 part 4, docs/benchmarks.md "What knowing durations is
worth"), on cases worked out by hand, and the pooled reference unchanged."""

from __future__ import annotations

import pytest

from flightbase_jobqueue.sim.reference import srtf_reference
from flightbase_jobqueue.sim.trace import TraceJob


def test_a_gang_job_needing_whole_nodes_waits_where_the_pooled_reference_runs_it():
    """2 nodes of 2 GPUs: a 3-GPU job and a 1-GPU job, 100 s each, at once. Pooled, both fit in
    4 GPUs (avg JCT 100 s); on nodes the 3-GPU job needs both nodes whole and waits for the
    other to end (100 s, then 200 s: 150 s)."""
    jobs = [TraceJob("x", 0.0, 3, 100.0, "g"), TraceJob("y", 0.0, 1, 100.0, "g")]
    assert srtf_reference(jobs, 4)["avg_jct"] == 100.0
    out = srtf_reference(jobs, 4, gpus_per_node=2)
    assert (out["avg_jct"], out["completed"], out["rejected"]) == (150.0, 2, 0)


def test_free_moves_repack_one_gpu_jobs_so_a_node_frees_up():
    """2 nodes of 2 GPUs. One-GPU jobs a (long) and b (short) start at 0, best fit puts both on
    one node; a 2-GPU job at 10 s finds the other node whole. One larger than the cluster is
    rejected, as the pooled reference rejects it."""
    jobs = [TraceJob("a", 0.0, 1, 1000.0, "g"), TraceJob("b", 0.0, 1, 50.0, "g"),
            TraceJob("c", 10.0, 2, 100.0, "g"), TraceJob("z", 0.0, 5, 10.0, "g")]
    out = srtf_reference(jobs, 4, gpus_per_node=2)
    assert (out["completed"], out["rejected"], out["preemptions"]) == (3, 1, 0)
    assert out["avg_jct"] == (1000.0 + 50.0 + 100.0) / 3


def test_a_node_size_that_does_not_divide_the_gpus_is_refused():
    with pytest.raises(ValueError, match="gpus_per_node"):
        srtf_reference([TraceJob("a", 0.0, 1, 10.0, "g")], 10, gpus_per_node=4)
