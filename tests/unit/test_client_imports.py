"""The client's modules import no service and none of the server's packages (#19: the client,
client/, is a distribution of its own that installs alone; tests/platform/test_client_alone.py
installs it into a fresh venv). The static check reads every import statement of every module
of client/flightbase, lazy ones inside functions included; the dynamic one imports the modules
and looks at what got loaded."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

CLIENT = Path(__file__).resolve().parents[2] / "client" / "flightbase"
SERVER_PACKAGES = ("flightbase_server", "flightbase_jobqueue", "flightbase_registry", "flightbase_spawner",
                   "flightbase_labext", "fastapi", "sqlalchemy", "alembic", "jupyterhub", "uvicorn", "docker")
CLIENT_MODULES = tuple(f"flightbase.{p.stem}" for p in sorted(CLIENT.glob("*.py"))
                       if p.stem not in ("__init__", "bench_allreduce_job", "magics", "ipp"))


def imported_names(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_no_client_module_imports_the_server():
    offending = {
        p.name: sorted(n for n in imported_names(p) if n.split(".")[0] in SERVER_PACKAGES)
        for p in sorted(CLIENT.glob("*.py"))
    }
    assert len(offending) >= 15, sorted(offending)  # the walk found the client's modules
    assert {k: v for k, v in offending.items() if v} == {}


def test_the_static_check_sees_a_lazy_server_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from flightbase_server import settings\n    import fastapi.routing\n")
    assert {"flightbase_server", "fastapi.routing"} <= imported_names(module)


@pytest.mark.parametrize("module", CLIENT_MODULES)
def test_importing_loads_no_service(module):
    out = subprocess.run([sys.executable, "-c", f"import sys, {module}; "
                          f"print(sorted(m for m in sys.modules if m.split('.')[0] in {SERVER_PACKAGES!r}))"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"{module} loads {out.strip()}"


def test_the_usage_flags_are_checked_without_the_jobqueue():
    out = subprocess.run([sys.executable, "-c", "import sys; from flightbase import cli_usage; "
                          "from types import SimpleNamespace as N; "
                          "print(cli_usage.check_args(N(by='day,user', start='2026-12-01', end=None))); "
                          "print(any(m.startswith('flightbase_jobqueue') for m in sys.modules))"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["day,user", "False"]
