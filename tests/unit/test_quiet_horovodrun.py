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


def test_horovodruns_worker_failure_is_read_for_its_rank_and_exit_status():
    from flightbase.quiet_horovodrun import worker_failed

    def error(name, code):
        return RuntimeError("Horovod detected that one or more processes exited with non-zero status, thus causing "
                            f"the job to be terminated. The first process to do so was:\nProcess name: {name}\n"
                            f"Exit code: {code}\n")

    assert worker_failed(error("1", 3)) == ("1", 3)
    assert worker_failed(error("0", -9)) == ("0", 137)  # killed by SIGKILL, as a shell says it
    assert worker_failed(error("0", 300)) == ("0", 1)
    assert worker_failed(RuntimeError("something else")) is None
    assert worker_failed(ValueError("Process name: 0\nExit code: 3")) is None


def test_a_failed_worker_ends_the_job_with_its_own_exit_status_and_no_launcher_traceback(tmp_path):
    """A real ``horovodrun --gloo`` of two local workers, through this entry point: rank 1 exits
    with status 3.  The job's status is 3 (horovodrun's own is 1 whatever the code's was), and the
    log ends with which rank failed instead of horovodrun's traceback."""
    import subprocess
    import sys

    script = tmp_path / "fail.py"
    script.write_text("import os, sys, time\n"
                      "if os.environ['HOROVOD_RANK'] == '1':\n"
                      "    print('rank one fails', file=sys.stderr); sys.exit(3)\n"
                      "time.sleep(60)\n")
    r = subprocess.run([sys.executable, "-m", "flightbase.quiet_horovodrun", "--gloo", "-np", "2", "-H", "localhost:2",
                        sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert "rank one fails" in r.stdout + r.stderr
    assert "horovodrun: rank 1 was the first to fail, with exit status 3" in r.stderr
    assert "Traceback" not in r.stderr, r.stderr


def test_a_workers_processes_are_all_ended_when_its_shell_ends_before_they_do(tmp_path):
    """horovod's own terminate_executor_shell_and_children raced here (CI, 495256c): the worker
    ends on SIGTERM, its shell then ends and is reaped, and horovod's second listing of the
    shell's children raised NoSuchProcess into the job's log, leaving the rest alive.  A real
    process tree: a shell, the worker under it, and a process the worker started that ignores
    SIGTERM.  It is ended all the same, and nothing is raised."""
    import subprocess
    import sys
    import threading
    import time

    import psutil

    from flightbase.quiet_horovodrun import terminate_tree

    pid_file = tmp_path / "stubborn.pid"
    (tmp_path / "stubborn.py").write_text("import os, signal, sys, time\n"
                                          "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                                          "open(sys.argv[1], 'w').write(str(os.getpid()))\n"
                                          "time.sleep(60)\n")
    (tmp_path / "worker.py").write_text("import subprocess, sys, time\n"
                                        "subprocess.Popen([sys.executable, sys.argv[1], sys.argv[2]])\n"
                                        "time.sleep(60)\n")
    shell = subprocess.Popen(["/bin/sh", "-c", f"{sys.executable} worker.py stubborn.py {pid_file}; true"], cwd=tmp_path)
    threading.Thread(target=shell.wait, daemon=True).start()  # reaped the moment it ends, as the middleman does
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text()):
        assert time.monotonic() < deadline, "the worker's process did not start"
        time.sleep(0.05)
    left = psutil.Process(int(pid_file.read_text()))

    terminate_tree(shell.pid, grace=1)

    assert shell.wait(timeout=10) is not None
    _, alive = psutil.wait_procs([left], timeout=10)
    assert not alive, "the process that ignores SIGTERM outlived its worker's end"


def test_ending_a_workers_tree_leaves_the_shells_exit_status_to_its_parent(tmp_path):
    """The middleman (the shell's parent) waits for the shell and reads its exit status; ending
    the tree must not reap the shell first (its parent would then read 0 whatever it was), nor
    signal it while it still runs what follows its worker (it would end by the signal, not
    with its status: on a loaded machine that took a moment; here a half-second ``sleep``)."""
    import subprocess
    import sys
    import time

    from flightbase.quiet_horovodrun import terminate_tree

    started = tmp_path / "started"
    (tmp_path / "worker.py").write_text("import sys, time\nopen(sys.argv[1], 'w').write('1')\ntime.sleep(60)\n")
    shell = subprocess.Popen(["/bin/sh", "-c", f"{sys.executable} worker.py {started}; sleep 0.5; exit 7"], cwd=tmp_path)
    deadline = time.monotonic() + 30
    while not started.exists():
        assert time.monotonic() < deadline, "the worker did not start"
        time.sleep(0.05)

    terminate_tree(shell.pid, grace=2)

    assert shell.wait(timeout=10) == 7
