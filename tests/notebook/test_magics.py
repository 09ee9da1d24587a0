"""The %%flightbase and %flightbase magics in a real kernel, against the real services.

Nothing is mocked: the cell is uploaded to the real jobqueue, runs under
``horovodrun --gloo`` on two CPU slots, and its logs stream back into the cell.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import pytest

from tests.platform.world import wait_state

from tests.helpers.notebooks import errors, text

pytestmark = pytest.mark.slow

HOROVOD_CELL = """%%flightbase --gpus 2 --launcher horovod --name cell-hvd
import torch
import horovod.torch as hvd
from helper import GREETING   # a module next to the notebook travels with the cell

hvd.init()
total = hvd.allreduce(torch.tensor([float(hvd.rank() + 1)]), op=hvd.Sum)
print(f"{GREETING} from rank {hvd.rank()} of {hvd.size()}: sum={total.item()}", flush=True)
"""


def jobs_named(platform, person, name: str) -> list[dict]:
    jobs = platform.api("jobqueue", "GET", "jobs", person.token, params={"workspace": person.workspace}).json()
    return [j for j in jobs if j["name"] == name]


def test_a_cell_runs_as_a_horovod_training_and_streams_its_logs(platform, person, notebook):
    (notebook.folder / "helper.py").write_text("GREETING = 'hello'\n")
    with notebook() as nb:
        assert not errors(nb.run("%load_ext flightbase"))
        cell = nb.run(HOROVOD_CELL)
        out = text(cell)
        assert not errors(cell), out
        assert "hello from rank 0 of 2: sum=3.0" in out
        assert "hello from rank 1 of 2: sum=3.0" in out
        [job] = jobs_named(platform, person, "cell-hvd")
        assert job["state"] == "succeeded" and job["gpus"] == 2 and len(job["placement"]["local"]) == 2
        assert f"job {job['id']}: succeeded, exit code 0" in text(cell, "stdout")  # the final state, streamed
        # the progress display ends on the final state too
        displays = [o for o in cell["outputs"] if o["output_type"] == "display_data"]
        assert displays and displays[-1]["data"]["text/plain"].startswith(f"job {job['id']}: succeeded")

        listed = text(nb.run("%flightbase jobs"))
        row = next(line for line in listed.splitlines() if line.startswith(job["id"]))
        assert "cell-hvd" in row and "succeeded" in row and "2 slot" in row

        logs = text(nb.run(f"%flightbase logs {job['id']}"))
        assert "hello from rank 1 of 2" in logs


def test_bad_values_give_one_line_naming_the_field(platform, person, notebook):
    with notebook() as nb:
        nb.run("%load_ext flightbase")
        cases = {
            "%%flightbase --gpus 0 --launcher horovod\nprint('never')": "gpus",  # refused by the jobqueue
            "%%flightbase --env NOEQUALS\nprint('never')": "env",  # refused before anything is sent
            "%%flightbase --gpus 3 --nodes 2\nprint('never')": "nodes",
            "%%flightbase --launcher warp\nprint('never')": "launcher",
            "%flightbase logs no-such-job": "",
        }
        for source, field in cases.items():
            cell = nb.run(source)
            assert not errors(cell), cell["outputs"]
            err = text(cell, "stderr")
            assert err.count("\n") == 1 and "Traceback" not in err, err
            assert re.match(rf"^(flightbase|%%flightbase): error: .*{field}", err), err
            assert text(cell, "stdout") == ""
    assert jobs_named(platform, person, "notebook-cell") == []  # nothing was submitted


def test_an_interrupt_stops_streaming_and_leaves_the_job_running(platform, person, notebook):
    with notebook() as nb:
        nb.run("%load_ext flightbase")

        cell = nb.add("%%flightbase --no-files --name long-cell\nimport time\nprint('started', flush=True)\ntime.sleep(120)")

        def interrupt_once_streaming():
            deadline = time.monotonic() + 120
            while "started" not in text(cell, "stdout") and time.monotonic() < deadline:
                time.sleep(0.2)
            os.kill(nb.client.km.provisioner.pid, signal.SIGINT)  # what the notebook's stop button does

        interrupter = threading.Thread(target=interrupt_once_streaming, daemon=True)
        interrupter.start()
        nb.run(cell)
        interrupter.join()
        [job] = jobs_named(platform, person, "long-cell")
        assert not errors(cell)
        assert "started" in text(cell, "stdout")
        assert f"job {job['id']} keeps running" in text(cell, "stderr")
        # not stopped by the interrupt; the job prints before the coordinator's next step records
        # its start (the backend's Started event), so on a loaded machine it may still read
        # "starting" for a moment
        assert platform.api("jobqueue", "GET", f"jobs/{job['id']}", person.token).json()["state"] in ("starting",
                                                                                                     "running")
        wait_state(platform, person.token, f"jobs/{job['id']}", ("running",), timeout=30)

        cancel = nb.run(f"%flightbase cancel {job['id']}")
        assert not errors(cancel) and text(cancel).startswith(f"job {job['id']}: ")  # the CLI's answer
    assert wait_state(platform, person.token, f"jobs/{job['id']}")["state"] == "cancelled"


def test_the_progress_display_shows_the_queue_position_then_the_end(platform, person, notebook):
    token = person.token
    code = platform.api("jobqueue", "POST", "code", token, params={"workspace": person.workspace, "filename": "hold.py"},
                        content=b"import time\ntime.sleep(300)\n").json()["id"]
    hold = platform.api("jobqueue", "POST", "trainings", token, json={
        "workspace": person.workspace, "name": "hold-all", "entrypoint": "hold.py", "code_id": code, "gpus": 4}).json()
    hold_job = hold["jobs"][0]["id"]
    wait_state(platform, token, f"jobs/{hold_job}", ("running",))
    with notebook() as nb:
        nb.run("%load_ext flightbase")
        cell = nb.add("%%flightbase --no-files --name waits\nprint('ran after all')")
        seen = []

        def release_once_queued():
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                shown = [o["data"]["text/plain"] for o in cell["outputs"] if o["output_type"] == "display_data"]
                if shown and "queued, position 1" in shown[-1]:
                    seen.append(shown[-1])
                    break
                time.sleep(0.2)
            platform.api("jobqueue", "POST", f"jobs/{hold_job}/cancel", token)

        releaser = threading.Thread(target=release_once_queued, daemon=True)
        releaser.start()
        nb.run(cell)
        releaser.join()
    [job] = jobs_named(platform, person, "waits")
    assert seen and seen[0].startswith(f"job {job['id']}: queued, position 1 (1 in {person.workspace}), estimated start ")
    assert "ran after all" in text(cell, "stdout")
    final = [o["data"]["text/plain"] for o in cell["outputs"] if o["output_type"] == "display_data"]
    assert len(final) == 1 and final[0].startswith(f"job {job['id']}: succeeded, exit code 0")  # updated in place
