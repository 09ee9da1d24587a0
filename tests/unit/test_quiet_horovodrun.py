"""quiet_horovodrun: horovod's own worker commands, without what a local worker inherits (issue #14, finding 9)."""

from collections import namedtuple

import pytest

from flightbase.quiet_horovodrun import quiet

gloo_run = pytest.importorskip("horovod.runner.gloo_run", reason="horovod is not installed")

Slot = namedtuple("Slot", "hostname rank size local_rank local_size cross_rank cross_size")
INHERITED = {"API_TOKEN": "s3cr3t", "PATH": "/bin", "HOROVOD_FUSION_THRESHOLD": "1"}


def commands(is_local):
    make = quiet(gloo_run._slot_info_to_command_fn, is_local, INHERITED)
    # horovodrun's env: what it inherited, with one variable its own options changed
    to_command = make("python -u train.py", {**INHERITED, "HOROVOD_FUSION_THRESHOLD": "64"})
    return to_command(Slot("localhost", 1, 2, 1, 2, 0, 1))


def test_a_local_workers_command_leaves_out_what_it_inherits():
    assert commands(lambda host: True) == (
        "env HOROVOD_HOSTNAME=localhost HOROVOD_RANK=1 HOROVOD_SIZE=2 HOROVOD_LOCAL_RANK=1 HOROVOD_LOCAL_SIZE=2 "
        "HOROVOD_CROSS_RANK=0 HOROVOD_CROSS_SIZE=1 HOROVOD_FUSION_THRESHOLD=64 PYTHONUNBUFFERED=1 python -u train.py")


def test_a_remote_worker_keeps_horovods_full_command():
    # over ssh nothing is inherited: horovod's own command, values and all
    assert "API_TOKEN=s3cr3t" in commands(lambda host: False)
