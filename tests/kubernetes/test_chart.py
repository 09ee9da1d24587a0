"""The Helm chart, linted by the real Helm engine (helm-sdkpy's libhelm).

helm-sdkpy 0.1.32 exposes lint, install and upgrade, but no template/render
call and no dry-run option, and its install needs a reachable API server, so
the rendered manifests cannot be printed here: these tests rely on Helm's lint,
which renders every template with the values and checks the values against
values.schema.json (severity 3 = error).  Validating each rendered object
against the Kubernetes schemas is left for `helm template | kubeconform` in a
place with the helm binary (docs/kubernetes.md).

The Zero to JupyterHub subchart cannot be fetched here; lint refuses to render
a chart whose dependency is missing, so the chart is linted from a copy without
the dependency (its values are still checked by our schema).
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
import yaml

helm = pytest.importorskip("helm_sdkpy", reason="helm-sdkpy is not installed (pip install --ignore-requires-python helm-sdkpy)")
from helm_sdkpy.chart import Lint  # noqa: E402

CHART = Path(__file__).resolve().parents[2] / "helm" / "flightbase"
ERROR = 3


def merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def lint(tmp_path: Path, overrides: dict | None = None) -> list[dict]:
    chart = tmp_path / "flightbase"
    shutil.copytree(CHART, chart)
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    meta.pop("dependencies")
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta))
    if overrides:
        values = yaml.safe_load((chart / "values.yaml").read_text())
        (chart / "values.yaml").write_text(yaml.safe_dump(merge(values, overrides)))
    result = asyncio.run(Lint(helm.Configuration()).run(str(chart)))
    return [m for m in result["Messages"] if m["Severity"] >= ERROR]


def test_default_values_lint_clean(tmp_path):
    assert lint(tmp_path) == []


def test_gpu_rdma_values_lint_clean(tmp_path):
    assert lint(tmp_path, yaml.safe_load((CHART / "ci" / "gpu-rdma-values.yaml").read_text())) == []


@pytest.mark.parametrize("bad", [
    {"jobqueue": {"schedulerPolicy": "bogus"}},
    {"storage": {"datasets": {"sizee": "1Gi"}}},  # additionalProperties: false
    {"gpu": {"rdma": "yes"}},  # a boolean
])
def test_bad_values_are_errors(tmp_path, bad):
    """(Lint turns `required` into a warning, so a missing database is not tested here.)"""
    assert lint(tmp_path, bad) != []


def test_every_schema_key_has_a_description():
    import json

    def walk(node, path):
        if node.get("type") == "object" or "properties" in node:
            assert "description" in node or path == "", path
            for key, child in (node.get("properties") or {}).items():
                assert "description" in child, f"{path}.{key}"
                walk(child, f"{path}.{key}")

    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["additionalProperties"] is False
    walk(schema, "")
