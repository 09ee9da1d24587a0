"""The Helm chart as the Kubernetes tests use it: a copy without its subchart dependency,
with values merged in, linted and rendered by the real Helm engine (helm-sdkpy's libhelm,
Helm v4) against the rendering stub API server (``stubapi.StubApi``; test_chart.py's
docstring says why). Shared by the chart, settings, metrics, docs and deployment tests.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
import yaml

helm = pytest.importorskip("helm_sdkpy", reason="helm-sdkpy is not installed (pip install --ignore-requires-python helm-sdkpy)")
from helm_sdkpy.actions import Install  # noqa: E402
from helm_sdkpy.chart import Lint  # noqa: E402

from .stubapi import StubApi  # noqa: E402

K8S_VERSION = "1.33.0"
CHART = Path(__file__).resolve().parents[2] / "helm" / "flightbase"
ERROR = 3


def merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def chart_copy(tmp_path: Path, overrides: dict | None = None) -> Path:
    """The chart without its subchart dependency, with ``overrides`` merged into values.yaml."""
    chart = tmp_path / "flightbase"
    shutil.copytree(CHART, chart)
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    meta.pop("dependencies")
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta))
    if overrides:
        values = yaml.safe_load((chart / "values.yaml").read_text())
        (chart / "values.yaml").write_text(yaml.safe_dump(merge(values, overrides)))
    return chart


def lint(tmp_path: Path, overrides: dict | None = None) -> list[dict]:
    result = asyncio.run(Lint(helm.Configuration()).run(str(chart_copy(tmp_path, overrides))))
    return [m for m in result["Messages"] if m["Severity"] >= ERROR]


def render(tmp_path: Path, overrides: dict | None = None) -> tuple[list[dict], list[dict]]:
    """(the manifest Helm rendered, the objects it created on the stub API server)."""
    chart = chart_copy(tmp_path, {"jupyterhub": {"enabled": False}, **(overrides or {})})
    with StubApi() as api:
        config = helm.Configuration(namespace="flightbase", kubeconfig=str(api.kubeconfig(tmp_path / "kubeconfig")))
        release = asyncio.run(Install(config).run("flightbase", str(chart), wait=False, timeout=60))
    manifest = [doc for doc in yaml.safe_load_all(release["manifest"]) if doc]
    return manifest, api.created


Z2JH = Path(__file__).parent / "fixtures" / "jupyterhub-4.2.0.tgz"  # z2jh's chart (fixtures/README.md)


def render_with_z2jh(tmp: Path, values: dict, namespace: str = "flightbase") -> list[dict]:
    """The manifest Helm installs for the chart with its z2jh dependency (the fixture) and
    ``values`` merged over the chart's own."""
    chart = tmp / "flightbase"
    shutil.copytree(CHART, chart, ignore=shutil.ignore_patterns("charts"))
    (chart / "charts").mkdir()
    shutil.copy(Z2JH, chart / "charts" / Z2JH.name)
    base = yaml.safe_load((chart / "values.yaml").read_text())
    (chart / "values.yaml").write_text(yaml.safe_dump(merge(base, values)))
    with StubApi() as api:
        config = helm.Configuration(namespace=namespace, kubeconfig=str(api.kubeconfig(tmp / "kubeconfig")))
        release = asyncio.run(Install(config).run("flightbase", str(chart), wait=False, timeout=120))
    return [doc for doc in yaml.safe_load_all(release["manifest"]) if doc]
