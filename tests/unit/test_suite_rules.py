"""The suite's own rule: a test that starts the platform carries the ``slow`` marker.

tests/conftest.py records the running test; tests/platform/harness.py calls
``running.require_slow`` before it starts anything. These tests use the real
items pytest is running (no stand-in): this module is not marked slow, so the
first must be refused and the second, marked, must pass.
"""

from __future__ import annotations

import pytest

from tests.helpers import running


def test_a_test_without_the_slow_marker_may_not_start_the_platform():
    assert running.current is not None and running.current.nodeid.endswith(
        "test_a_test_without_the_slow_marker_may_not_start_the_platform")
    with pytest.raises(RuntimeError, match=r"test_suite_rules\.py::.* starts the platform but is not marked slow"):
        running.require_slow("starts the platform")


@pytest.mark.slow
def test_a_slow_test_may():
    running.require_slow("starts the platform")
    assert running.current.get_closest_marker("slow") is not None


# Imports from one test module into another: none is left, and none may be added.
CROSS_IMPORTS_LEFT: set[tuple[str, str]] = set()


def test_test_modules_import_shared_helpers_from_tests_helpers_not_from_each_other():
    """Helpers shared by several test modules live in tests/helpers/ (or a plain module of the
    folder), never in a test module or a conftest that another module imports."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    found = set()
    for path in sorted((root / "tests").rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        package = ".".join(path.relative_to(root).parent.parts)
        for node in ast.walk(ast.parse(path.read_text(), rel)):
            if not isinstance(node, ast.ImportFrom) or node.module is None and not node.level:
                continue
            module = node.module or ""
            if node.level:  # relative: from .x import y
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([module] if module else []))
            last = module.rsplit(".", 1)[-1]
            if module.startswith("tests.") and (last.startswith("test_") or last == "conftest"):
                if not (path.name == "conftest.py" and last == "conftest"):  # fixtures shared between folders
                    found.add((rel, module))
    assert found <= CROSS_IMPORTS_LEFT, sorted(found - CROSS_IMPORTS_LEFT)
