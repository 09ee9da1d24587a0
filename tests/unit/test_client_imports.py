"""The client's modules import no service (#19: a client that installs alone is the goal; until the
distributions are split, this keeps the client side from growing new imports of the jobqueue)."""

import subprocess
import sys

import pytest

CLIENT_MODULES = ("flightbase.client", "flightbase.grid", "flightbase.usage_params", "flightbase.cli",
                  "flightbase.cli_jobs", "flightbase.cli_usage", "flightbase.cli_datasets", "flightbase.cli_builtin",
                  "flightbase.uploads")


@pytest.mark.parametrize("module", CLIENT_MODULES)
def test_importing_loads_no_service(module):
    out = subprocess.run([sys.executable, "-c", f"import sys, {module}; "
                          "print(sorted(m for m in sys.modules if m.startswith(('flightbase_jobqueue', "
                          "'flightbase_registry', 'fastapi', 'sqlalchemy', 'alembic'))))"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"{module} loads {out.strip()}"


def test_the_usage_flags_are_checked_without_the_jobqueue():
    out = subprocess.run([sys.executable, "-c", "import sys; from flightbase import cli_usage; "
                          "from types import SimpleNamespace as N; "
                          "print(cli_usage.check_args(N(by='day,user', start='2026-12-01', end=None))); "
                          "print(any(m.startswith('flightbase_jobqueue') for m in sys.modules))"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["day,user", "False"]
