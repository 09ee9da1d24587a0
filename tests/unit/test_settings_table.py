"""README.md's table of the services' settings is the one generated from the settings objects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "settings_table.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_the_readme_table_is_the_generated_one():
    result = run("--check")
    assert result.returncode == 0, result.stderr


def test_every_setting_has_a_row_with_its_help():
    from flightbase_server.settings import HubServiceEnv, PlatformSettings, documented_fields, env_name

    table = run().stdout
    for cls in (PlatformSettings, HubServiceEnv):
        for f in documented_fields(cls):
            row = next(line for line in table.splitlines() if line.startswith(f"| `{env_name(f)}` |"))
            assert " ".join(f.metadata["help"].split()).replace("|", "\\|") in row
    assert "| `FLIGHTBASE_REGISTRY_URL` | `http://127.0.0.1:<registry_port>` | jobqueue; set by the Helm chart |" in table
    assert "| `FLIGHTBASE_REGISTRY_MAX_CHUNK_BYTES` | 1 GB | registry |" in table


def test_a_drifted_readme_fails_the_check_and_write_repairs_it(tmp_path):
    readme = tmp_path / "README.md"
    good = (ROOT / "README.md").read_text()
    readme.write_text(good.replace("How often Jupyter trainings' leases", "How rarely Jupyter trainings' leases"))
    result = run("--check", "--readme", str(readme))
    assert result.returncode == 1 and "out of date" in result.stderr and result.stderr.count("\n") == 1
    assert run("--write", "--readme", str(readme)).returncode == 0
    assert readme.read_text() == good


def test_a_readme_without_the_markers_is_an_error(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no table here\n")
    result = run("--check", "--readme", str(readme))
    assert result.returncode != 0 and "markers" in result.stderr
