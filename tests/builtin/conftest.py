"""The real platform of tests/platform, and datasets generated once per session."""

import sys
from pathlib import Path

from flightbase_jobqueue.builtin import DEFAULT_ROOT

import pytest

from tests.platform.conftest import platform, world  # noqa: F401  (fixtures used by test_platform.py)

ROOT = Path(__file__).resolve().parents[2]
MODELS = DEFAULT_ROOT  # flightbase_jobqueue/builtin_models, the package data


@pytest.fixture(scope="session")
def datasets(tmp_path_factory) -> dict[str, Path]:
    """images/, text/ and tabular/ from builtin_models/_data/make_datasets.py (tiny)."""
    sys.path.insert(0, str(MODELS))
    try:
        from _data.make_datasets import make_all
    finally:
        sys.path.remove(str(MODELS))
    return make_all(tmp_path_factory.mktemp("builtin-data"), "tiny")
