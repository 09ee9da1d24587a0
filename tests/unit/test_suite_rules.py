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


# --- Every test that starts a platform carries the ``slow`` marker, found without running it.
#
# running.require_slow refuses an unmarked test only once it runs, and a suite skipped on this
# machine (one that needs root, Docker or a GPU) never does; this reads the sources instead, so
# that the rule holds for every suite wherever the unit tests run, before anything is started.

# What starts a platform when a fixture or a test calls it (tests/platform/harness.py,
# tests/helpers/platforms.py).
PLATFORM_STARTERS = {"new_platform", "running_platform"}
# Fixture factories of tests/helpers/platforms.py: whether the fixture made starts a platform
# itself, and the fixtures it asks for.
PLATFORM_FACTORIES = {"platform_fixture": (True, ()), "member_fixture": (False, ("platform",))}


def _called(node) -> set[str]:
    import ast

    names = set()
    for call in ast.walk(node):
        if isinstance(call, ast.Call):
            func = call.func
            names.add(func.id if isinstance(func, ast.Name) else getattr(func, "attr", ""))
    return names


def _is_slow_mark(expr, aliases=frozenset()) -> bool:
    """``pytest.mark.slow`` (or ``mark.slow``, or a module's name for it: ``slow = pytest.mark.slow``),
    alone or in a list/tuple of marks."""
    import ast

    if isinstance(expr, (ast.List, ast.Tuple)):
        return any(_is_slow_mark(e, aliases) for e in expr.elts)
    if isinstance(expr, ast.Name):
        return expr.id in aliases
    return isinstance(expr, ast.Attribute) and expr.attr == "slow" and (
        isinstance(expr.value, ast.Attribute) and expr.value.attr == "mark"
        or isinstance(expr.value, ast.Name) and expr.value.id == "mark")


def _fixture_decorator(fn):
    """The ``@pytest.fixture`` (or ``@pytest.fixture(...)``) decorator of ``fn``, or None."""
    import ast

    for dec in fn.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        if (isinstance(target, ast.Attribute) and target.attr == "fixture"
                or isinstance(target, ast.Name) and target.id == "fixture"):
            return dec
    return None


def _parameters(fn) -> list[str]:
    args = fn.args
    return [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs if a.arg not in ("self", "cls")]


def _fixtures(tree) -> dict[str, tuple[bool, tuple[str, ...]]]:
    """The fixtures a module (or conftest) defines: name -> (starts a platform itself, fixtures it asks for)."""
    import ast

    found = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (dec := _fixture_decorator(node)):
            name = node.name
            if isinstance(dec, ast.Call):  # @pytest.fixture(name="...")
                name = next((k.value.value for k in dec.keywords
                             if k.arg == "name" and isinstance(k.value, ast.Constant)), name)
            found[name] = (bool(_called(node) & PLATFORM_STARTERS), tuple(_parameters(node)))
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            func = node.value.func
            factory = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if factory in PLATFORM_FACTORIES:
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        found[target.id] = PLATFORM_FACTORIES[factory]
    return found


def unmarked_platform_tests(tests_root) -> tuple[list[str], int]:
    """The tests under ``tests_root`` that start a platform (calling new_platform/running_platform,
    or asking, directly or through other fixtures, for a fixture that does) without the ``slow``
    marker on their module (``pytestmark``), class or function; and how many start one in all.

    Fixtures are resolved by name as pytest does: the test module first, then the conftest.py
    files from its folder up to ``tests_root``; a fixture that asks for its own name gets the
    next one up. A fixture a module imports from another (``from tests.platform.conftest import
    platform``) is that module's."""
    import ast
    from pathlib import Path

    tests_root = Path(tests_root)
    base = tests_root.parent  # where ``tests.…`` imports start
    trees, fixtures = {}, {}

    def tree_of(path: Path):
        if path not in trees:
            trees[path] = ast.parse(path.read_text(), str(path)) if path.exists() else ast.Module(body=[], type_ignores=[])
        return trees[path]

    def fixtures_in(path: Path) -> dict:
        if path not in fixtures:
            fixtures[path] = {}  # a cycle of imports ends here
            tree = tree_of(path)
            found = _fixtures(tree)
            for node in tree.body:
                if not isinstance(node, ast.ImportFrom):
                    continue
                parts = (node.module or "").split(".") if node.module else []
                if node.level:  # relative: from .conftest import x
                    package = list(path.relative_to(base).parent.parts)
                    parts = package[:len(package) - (node.level - 1)] + parts
                source = base.joinpath(*parts).with_suffix(".py") if parts else None
                if source is None or source == path or not source.is_file() or base not in source.parents:
                    continue
                theirs = fixtures_in(source)
                for alias in node.names:
                    if alias.name in theirs:
                        found.setdefault(alias.asname or alias.name, theirs[alias.name])
            fixtures[path] = found
        return fixtures[path]

    offenders, starting = [], 0
    for path in sorted(tests_root.rglob("test_*.py")):
        tree = tree_of(path)
        folders = [path.parent, *[p for p in path.parent.parents if p == tests_root or tests_root in p.parents]]
        scopes = [fixtures_in(path)] + [fixtures_in(folder / "conftest.py") for folder in folders]

        def starts(name: str, level: int = 0, seen=frozenset()) -> bool:
            for i in range(level, len(scopes)):
                if name in scopes[i]:
                    if (name, i) in seen:
                        return False
                    itself, asks = scopes[i][name]
                    return itself or any(starts(n, i + 1 if n == name else 0, seen | {(name, i)}) for n in asks)
            return False

        aliases = {t.id for n in tree.body if isinstance(n, ast.Assign) and _is_slow_mark(n.value)
                   for t in n.targets if isinstance(t, ast.Name) and t.id != "pytestmark"}
        module_slow = any(isinstance(n, (ast.Assign, ast.AugAssign)) and _is_slow_mark(n.value, aliases)
                          and any(isinstance(t, ast.Name) and t.id == "pytestmark"
                                  for t in (n.targets if isinstance(n, ast.Assign) else [n.target]))
                          for n in tree.body)
        tests = [(n, False) for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name.startswith("Test")):
            cls_slow = any(_is_slow_mark(d, aliases) for d in cls.decorator_list) or any(
                isinstance(n, ast.Assign) and _is_slow_mark(n.value, aliases)
                and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in n.targets) for n in cls.body)
            tests += [(n, cls_slow) for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        for fn, cls_slow in tests:
            if not fn.name.startswith("test") or _fixture_decorator(fn):
                continue
            if not (_called(fn) & PLATFORM_STARTERS or any(starts(n) for n in _parameters(fn))):
                continue
            starting += 1
            if not (module_slow or cls_slow or any(_is_slow_mark(d, aliases) for d in fn.decorator_list)):
                offenders.append(f"{path.relative_to(tests_root.parent).as_posix()}::{fn.name}")
    return offenders, starting


def test_every_test_that_starts_a_platform_is_marked_slow():
    from pathlib import Path

    offenders, starting = unmarked_platform_tests(Path(__file__).resolve().parents[1])
    assert not offenders, ("these tests start a platform but are not marked slow "
                           "(add `pytestmark = pytest.mark.slow` to their module):\n" + "\n".join(offenders))
    assert starting > 100  # the rule sees the platform suites (a broken reader would find none)


def test_the_slow_rule_follows_fixtures_through_conftest_files(tmp_path):
    """The reader of the rule above, on a small suite of its own."""
    (tmp_path / "tests" / "suite").mkdir(parents=True)
    (tmp_path / "tests" / "conftest.py").write_text(
        "import pytest\nfrom tests.helpers.platforms import platform_fixture\n"
        "platform = platform_fixture('p', scope='session')\n"
        "@pytest.fixture\ndef world(platform):\n    return platform\n")
    (tmp_path / "tests" / "suite" / "conftest.py").write_text(
        "import pytest\n@pytest.fixture\ndef world(world):\n    return world\n"
        "@pytest.fixture(name='quiet')\ndef _quiet(tmp_path):\n    return tmp_path\n")
    (tmp_path / "tests" / "suite" / "test_marked.py").write_text(
        "import pytest\npytestmark = [pytest.mark.slow, pytest.mark.skipif(False, reason='')]\n"
        "def test_a(world):\n    pass\n")
    (tmp_path / "tests" / "suite" / "test_unmarked.py").write_text(
        "import pytest\nfrom tests.helpers.platforms import running_platform\n"
        "def test_through_two_worlds(world):\n    pass\n"
        "def test_quiet(quiet, tmp_path):\n    pass\n"
        "@pytest.mark.slow\ndef test_marked_itself(platform):\n    pass\n"
        "slow = pytest.mark.slow\n@slow\ndef test_marked_by_its_name(world):\n    pass\n"
        "def test_starts_its_own(tmp_path_factory):\n"
        "    with running_platform(tmp_path_factory, 'x') as p:\n        assert p\n"
        "class TestSome:\n    def test_in_a_class(self, platform):\n        pass\n")
    (tmp_path / "tests" / "other").mkdir()
    (tmp_path / "tests" / "other" / "conftest.py").write_text(
        "from tests.conftest import platform as plat  # noqa: F401\n")
    (tmp_path / "tests" / "other" / "test_imported.py").write_text(
        "def test_imported(plat):\n    pass\n")
    (tmp_path / "tests" / "suite" / "test_own_platform.py").write_text(
        "import pytest\n@pytest.fixture\ndef platform():\n    return None\n"  # shadows the conftest's: starts nothing
        "def test_shadowed(platform):\n    pass\n")
    offenders, starting = unmarked_platform_tests(tmp_path / "tests")
    assert offenders == ["tests/other/test_imported.py::test_imported",
                         "tests/suite/test_unmarked.py::test_through_two_worlds",
                         "tests/suite/test_unmarked.py::test_starts_its_own",
                         "tests/suite/test_unmarked.py::test_in_a_class"]
    assert starting == 7
