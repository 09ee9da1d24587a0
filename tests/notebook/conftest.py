"""Fixtures of the notebook tests: a real platform, a person with a workspace, and a real kernel.

The platform is the real one (tests.platform.harness: hub, proxy, jobqueue on
CPU slots). Notebooks run in a real IPython kernel through nbclient, with the
environment a single-user server gives its kernels: the hub's URL, the person's
token and FLIGHTBASE_WORKSPACE.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.helpers.platforms import platform_fixture


@dataclass
class Person:
    name: str
    token: str
    workspace: str


# A platform of these tests' own, with 4 CPU slots (the harness's default).
platform = platform_fixture("notebook-platform", scope="session")


@pytest.fixture(scope="session")
def person(platform) -> Person:
    token = platform.create_user("nb-user")
    resp = platform.api("jobqueue", "POST", "workspaces", platform.admin_token,
                        json={"name": "lab", "settings": {"gpu_quota": 4}})
    assert resp.status_code == 201, resp.text
    assert platform.api("jobqueue", "PUT", "workspaces/lab/members/nb-user", platform.admin_token).status_code == 200
    return Person("nb-user", token, "lab")


class Notebook:
    """A notebook run cell by cell in a real kernel, so that a test can look at the platform in between."""

    def __init__(self, folder: Path, env: dict[str, str]):
        self.nb = nbformat.v4.new_notebook()
        self.client = NotebookClient(self.nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(folder)}})
        self.env = env
        self._ctx = None

    def __enter__(self):
        self._ctx = self.client.setup_kernel(env=self.env)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)

    def add(self, source: str) -> dict:
        """A new cell: its outputs fill in while it runs (nbclient appends them as they come)."""
        cell = nbformat.v4.new_code_cell(source)
        self.nb.cells.append(cell)
        return cell

    def run(self, source_or_cell) -> dict:
        cell = self.add(source_or_cell) if isinstance(source_or_cell, str) else source_or_cell
        return self.client.execute_cell(cell, self.nb.cells.index(cell))


@pytest.fixture
def notebook(platform, person, tmp_path):
    """Make a notebook in a folder of its own whose kernel talks to the platform as ``person``."""
    folder = tmp_path / "nb"
    folder.mkdir()
    env = dict(os.environ, FLIGHTBASE_URL=platform.url, FLIGHTBASE_TOKEN=person.token,
               FLIGHTBASE_WORKSPACE=person.workspace)
    for key in ("JUPYTERHUB_API_URL", "JUPYTERHUB_API_TOKEN"):
        env.pop(key, None)

    def make() -> Notebook:
        return Notebook(folder, env)

    make.folder = folder
    return make
