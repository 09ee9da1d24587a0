"""The notebook magic's one-line status of a job (``flightbase.magics.status_line``), for queued jobs."""

from flightbase.magics import status_line

HELD = "held: its sweep runs 2 jobs at a time; joins the queue when one of its earlier jobs ends"


def queued(held: bool, queue: dict | None) -> dict:
    return {"id": "j1", "state": "queued", "gpu_kind": "cpu-slot", "held": held, "workspace": "vision", "queue": queue}


def test_a_held_job_says_why_it_is_held_not_a_position_0():
    line = status_line(queued(True, {"position": 0, "workspace_position": 0, "estimated_start": None, "reason": HELD}))
    assert line == f"job j1: queued, {HELD}"
    assert status_line(queued(True, None)) == "job j1: queued (held until earlier jobs of its sweep end)"


def test_a_ranked_job_says_its_position_and_reason():
    line = status_line(queued(False, {"position": 2, "workspace_position": 1, "estimated_start": None, "reason": "needs 2 GPUs"}))
    assert line == "job j1: queued, position 2 (1 in vision), estimated start unknown: needs 2 GPUs"
