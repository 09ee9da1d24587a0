"""The pure parts of Jupyter trainings: option checks, the form, the progress line,
the dataset links, the idle verdict and the orphan rule."""

from __future__ import annotations

import pytest

from flightbase_jobqueue.leases import Activity, idle_verdict, orphaned, public_state
from flightbase_server.as_user import op_notebook_folder
from flightbase_spawner.options import (JupyterOptions, OptionsError, WorkspaceChoices, check_choices, from_form,
                                        local_environment, parse_options, queue_message, render_form)


def test_options_default_to_the_only_workspace_one_gpu_and_the_notebook_image():
    assert parse_options({}, ["vision"]) == JupyterOptions(workspace="vision", image="notebook", gpus=1, datasets=())
    assert parse_options({"workspace": "nlp", "gpus": "0", "datasets": "cats@2"}, ["nlp", "vision"]) == \
        JupyterOptions(workspace="nlp", gpus=0, datasets=("cats@2",))


@pytest.mark.parametrize(("raw", "field", "reason"), [
    ({}, "workspace", "choose a workspace"),
    ({"workspace": "other"}, "workspace", "you are not a member of a workspace named 'other'"),
    ({"workspace": "a", "gpus": 2}, "gpus", "a Jupyter training has 0 or 1 GPU"),
    ({"workspace": "a", "gpus": True}, "gpus", "a Jupyter training has 0 or 1 GPU"),
    ({"workspace": "a", "image": "has space"}, "image", "must be an image name"),
    ({"workspace": "a", "datasets": ["../x"]}, "datasets", "'../x' is not NAME or NAME@VERSION"),
    ({"workspace": "a", "datasets": ["x", "x@2"]}, "datasets", "a dataset is named twice"),
    ({"workspace": "a", "memory": "1T"}, "memory", "unknown option"),
])
def test_bad_options_name_their_field(raw, field, reason):
    with pytest.raises(OptionsError) as err:
        parse_options(raw, ["a", "b"])
    assert err.value.field == field and reason in str(err.value)


def test_no_workspace_at_all_says_whom_to_ask():
    with pytest.raises(OptionsError, match="ask an administrator"):
        parse_options({}, [])


def test_image_and_datasets_must_be_the_workspaces_own():
    choices = WorkspaceChoices(images=["notebook", "mine"], datasets=["cats"])
    check_choices(JupyterOptions(workspace="a", image="mine", datasets=("cats@3",)), choices)
    with pytest.raises(OptionsError, match="image: 'theirs' is not an image of workspace 'a'"):
        check_choices(JupyterOptions(workspace="a", image="theirs"), choices)
    with pytest.raises(OptionsError, match="datasets: no dataset 'dogs' in workspace 'a'"):
        check_choices(JupyterOptions(workspace="a", datasets=("dogs",)), choices)


def test_the_form_posts_the_chosen_workspaces_fields_only():
    form = {"workspace": ["b"], "image.a": ["x"], "image.b": ["mine"], "datasets.a": ["p"],
            "datasets.b": ["cats", "dogs"], "gpu": ["1"]}
    assert from_form(form) == {"workspace": "b", "image": "mine", "gpus": 1, "datasets": ["cats", "dogs"]}
    assert from_form({"workspace": ["b"]}) == {"workspace": "b", "image": "notebook", "gpus": 0, "datasets": []}


def test_the_form_lists_each_workspaces_images_and_datasets_escaped():
    html = render_form({"a": WorkspaceChoices(images=["notebook"], datasets=[], gpu_kind="cpu-slot",
                                              note="runs as the host's Python environment"),
                        "b": WorkspaceChoices(images=["notebook", "<evil>"], datasets=["cats"])}, selected="b")
    assert '<option value="b" selected>b</option>' in html
    assert 'name="image.b"' in html and "&lt;evil&gt;" in html and "<evil>" not in html
    assert '<option value="notebook" selected>notebook</option>' in html  # the Jupyter image by default
    assert 'name="datasets.b" value="cats"' in html
    assert '<fieldset class="fb-workspace" data-workspace="a" hidden>' in html
    assert "runs as the host&#x27;s Python environment" in html
    assert render_form({}).startswith("<p>You are not a member of any workspace")


def test_the_progress_line_says_where_and_why():
    lease = {"workspace": "vision", "reason": None,
             "queue": {"position": 3, "workspace_position": 1, "estimated_start": None,
                       "reason": "workspace quota 1/1 in use (borrowing is off)"}}
    assert queue_message(lease) == ("Waiting for a GPU: position 3 in the queue (1st in workspace vision); "
                                    "workspace quota 1/1 in use (borrowing is off)")


def test_local_environment_shows_the_granted_gpu_or_slot_only():
    opts = JupyterOptions(workspace="w")
    gpu = local_environment(opts, {"id": "L", "gpus": [3], "gpu_kind": "gpu"}, public_url="http://h", datasets_dir=None)
    assert gpu["CUDA_VISIBLE_DEVICES"] == "3" and gpu["FLIGHTBASE_LEASE_ID"] == "L" and "FLIGHTBASE_CPU_SLOTS" not in gpu
    slot = local_environment(opts, {"id": "L", "gpus": [1], "gpu_kind": "cpu-slot"}, public_url="http://h",
                             datasets_dir="/d")
    assert slot["CUDA_VISIBLE_DEVICES"] == "" and slot["FLIGHTBASE_CPU_SLOTS"] == "1"
    assert slot["FLIGHTBASE_DATASETS_DIR"] == "/d" and slot["FLIGHTBASE_URL"] == "http://h"
    none = local_environment(opts, None, public_url="http://h", datasets_dir=None)
    assert none["CUDA_VISIBLE_DEVICES"] == "" and none["FLIGHTBASE_NUM_GPUS"] == "0" and "FLIGHTBASE_LEASE_ID" not in none


def test_dataset_links_follow_the_lease_and_never_touch_real_files(tmp_path):
    """The operation the spawner runs as the person (flightbase_server.as_user), called in-process here."""
    v1, v2 = tmp_path / "v1", tmp_path / "v2"
    v1.mkdir()
    v2.mkdir()
    folder = tmp_path / "ws" / "datasets"

    def link(datasets):
        return op_notebook_folder({"home": str(tmp_path), "workspace": "ws", "datasets": datasets})["blocked"]

    assert link([{"name": "cats", "path": str(v1)}, {"name": "dogs", "path": str(v2)}]) == []
    (folder / "mine").mkdir()
    assert link([{"name": "cats", "path": str(v2)}, {"name": "mine", "path": str(v1)}]) == ["mine"]
    assert sorted(p.name for p in folder.iterdir()) == ["cats", "mine"]
    assert (folder / "cats").resolve() == v2 and not (folder / "mine").is_symlink()


NOW = 10_000.0


def seen(gpu=None, busy=False, last=None):
    return Activity(gpu_busy=gpu, kernels_busy=busy, last_activity=last)


def test_idle_verdicts():
    t = 600.0
    # busy GPU or kernel: active now, whatever the clock says
    assert idle_verdict(NOW, 0, 0, seen(gpu=True), t, warned=True).action == "keep"
    assert idle_verdict(NOW, 0, 0, seen(busy=True), t, warned=False).last_active == NOW
    # idle since the last kernel activity: 7 min -> keep, 8.5 min -> warn once, 10 min -> stop
    assert idle_verdict(NOW, 0, 0, seen(last=NOW - 420), t, warned=False).action == "keep"
    warn = idle_verdict(NOW, 0, 0, seen(last=NOW - 510), t, warned=False)
    assert warn.action == "warn" and warn.message == "idle for 8 min: the server will be stopped in 90 s unless it is used"
    assert idle_verdict(NOW, 0, 0, seen(last=NOW - 510), t, warned=True).action == "keep"
    stop = idle_verdict(NOW, 0, 0, seen(last=NOW - 600), t, warned=True)
    assert stop.action == "stop" and "stopped after 10 min idle" in stop.message
    # a GPU busy a while ago (remembered) counts, and so does the grant itself
    assert idle_verdict(NOW, 0, NOW - 100, seen(gpu=False, last=NOW - 900), t, warned=False).action == "keep"
    assert idle_verdict(NOW, NOW - 60, 0, seen(last=None), t, warned=False).action == "keep"


def test_a_lease_is_orphaned_when_its_server_is_neither_running_nor_starting():
    assert not orphaned("exp", {"exp": {"ready": True, "pending": None}})
    assert not orphaned("exp", {"exp": {"ready": False, "pending": "spawn"}})
    assert orphaned("exp", {"exp": {"ready": False, "pending": "stop"}})
    assert orphaned("exp", {"other": {"ready": True}})
    assert orphaned("", None)
    assert [public_state(s) for s in ("queued", "running", "succeeded", "cancelled")] == \
        ["queued", "granted", "released", "cancelled"]
