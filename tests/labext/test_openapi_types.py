"""The extension's TypeScript types are generated from the services' OpenAPI documents (#19, item 7).

scripts/openapi_types.py builds each service's real FastAPI application (not
started) and runs openapi-typescript on its ``openapi()`` document; src/tokens.ts
is written in terms of the generated types. These tests regenerate them: the
committed files must be what the services describe now, and a drifted file must
be named by ``--check``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import openapi_types  # noqa: E402

if not (openapi_types.LABEXT / "node_modules" / ".bin" / "openapi-typescript").exists():
    pytest.skip("flightbase_labext/node_modules is missing: run make install", allow_module_level=True)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("generated")
    openapi_types.generate(out)
    return out


def test_the_committed_types_are_what_the_services_describe(fresh):
    assert sorted(p.name for p in fresh.glob("*.ts")) == ["jobqueue.ts", "registry.ts"]
    assert openapi_types.differences(fresh, openapi_types.GENERATED) == [], \
        "run .venv/bin/python scripts/openapi_types.py and commit flightbase_labext/src/generated/"


def test_the_generated_types_carry_the_schemas_the_extension_uses(fresh):
    text = (fresh / "jobqueue.ts").read_text()
    for schema in ("JobOut", "QueueInfo", "TrainingOut", "TrainingCreate", "BuiltinModelOut", "WorkspaceOut"):
        assert f"        {schema}: {{" in text, schema
    tokens = (openapi_types.LABEXT / "src" / "tokens.ts").read_text()
    assert "from './generated/jobqueue'" in tokens and "from './generated/registry'" in tokens


def test_check_names_a_drifted_file(fresh, tmp_path, monkeypatch, capsys):
    committed = tmp_path / "committed"
    shutil.copytree(fresh, committed)
    drifted = committed / "jobqueue.ts"
    drifted.write_text(drifted.read_text().replace("estimated_start", "estimated_begin"))
    assert openapi_types.differences(fresh, committed) == ["jobqueue.ts"]
    monkeypatch.setattr(openapi_types, "GENERATED", committed)
    assert openapi_types.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert "out of date (jobqueue.ts)" in err and err.count("\n") == 1
