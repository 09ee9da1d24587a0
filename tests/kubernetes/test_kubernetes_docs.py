"""docs/kubernetes.md's install, upgrade, backup and restore steps against the chart.

The commands in the doc name objects, values and databases; these tests take
them out of the doc and check them against what Helm's engine renders from the
chart (``chart.render``: a real Helm install against the stub API server)
and against ``values.schema.json`` (Helm's lint), so that renaming an object or
a value without the doc fails here.  The Zero to JupyterHub subchart is not
rendered (it cannot be fetched here): the names the doc uses of it are z2jh's
defaults for ``jupyterhub.fullnameOverride: ""`` and are listed below.
"""

from __future__ import annotations

import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from .chart import K8S_VERSION, lint, render

DOC = (Path(__file__).resolve().parents[2] / "docs" / "kubernetes.md").read_text()
# z2jh 4.x's objects with jupyterhub.fullnameOverride "" (the chart's values.yaml sets it)
Z2JH = {"Deployment": {"hub", "proxy"}, "Secret": {"hub"}, "PersistentVolumeClaim": {"hub-db-dir"}, "Pod": set()}
HELPER_POD = "flightbase-backup"


def section(title: str) -> str:
    """The text of the ``## title`` section, down to the next ``## `` heading."""
    start = DOC.index(f"## {title}\n")
    end = DOC.find("\n## ", start + 3)
    return DOC[start:end if end > 0 else None]


def code_block(text: str, first_line: str) -> str:
    """The indented code block that starts with ``first_line`` (4 spaces of indent removed)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == first_line.strip() and line.startswith("    "))
    block = []
    for line in lines[start:]:
        if line and not line.startswith("    "):
            break
        block.append(line[4:])
    return "\n".join(block).strip() + "\n"


@pytest.fixture(scope="module")
def example_values() -> dict:
    """The install's my-values.yaml (step 6) with the Ingress of step 4."""
    install = section("Install on a cluster, step by step")
    values = yaml.safe_load(code_block(install, "images:"))
    ingress = yaml.safe_load(code_block(install, "jupyterhub:"))
    values["jupyterhub"].update(ingress["jupyterhub"])
    return values


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, example_values) -> dict[str, set[str]]:
    """Names by kind of what the chart renders for the example values (plus StatefulSet pods
    and their claims)."""
    overrides = {k: v for k, v in example_values.items() if k != "jupyterhub"}
    manifest, _ = render(tmp_path_factory.mktemp("docs"), overrides)
    names: dict[str, set[str]] = {}
    for obj in manifest:
        names.setdefault(obj["kind"], set()).add(obj["metadata"]["name"])
        if obj["kind"] == "StatefulSet":
            pod = f"{obj['metadata']['name']}-0"
            names.setdefault("Pod", set()).add(pod)
            for claim in obj["spec"].get("volumeClaimTemplates", []):
                names.setdefault("PersistentVolumeClaim", set()).add(f"{claim['metadata']['name']}-{pod}")
    return {kind: names.get(kind, set()) | Z2JH.get(kind, set()) for kind in {*names, *Z2JH}} | {"_manifest": manifest}


def test_the_example_values_pass_the_schema(tmp_path, example_values):
    assert example_values["images"]["registry"] == "registry.example.com/flightbase"
    assert lint(tmp_path, example_values) == []


def test_the_objects_the_steps_name_are_the_charts(rendered):
    text = section("Install on a cluster, step by step") + section("Upgrade") + section("Backup and restore")
    named: dict[str, set[str]] = {"Deployment": set(), "Secret": set(), "PersistentVolumeClaim": set(), "Pod": set()}
    named["Deployment"] |= set(re.findall(r"(?<=\s)deploy/([a-z0-9-]+)", text))
    named["Pod"] |= set(re.findall(r"\bexec (?:-i )?(flightbase-[a-z0-9-]+-0)\b", text))
    named["PersistentVolumeClaim"] |= set(re.findall(r"claimName: ([a-z0-9-]+)", text))
    named["PersistentVolumeClaim"] |= set(re.findall(r"claim `([a-z0-9-]+)`", text))
    for line in re.findall(r"get secret ([a-z0-9 -]+) -o", text):
        named["Secret"] |= set(line.split())
    named["Secret"] |= set(re.findall(r"`(flightbase-[a-z0-9-]+)` \(`(?:password|username|token)", text))
    assert named["Deployment"] >= {"flightbase-jobqueue", "flightbase-registry", "flightbase-oci", "hub"}
    assert named["Secret"] >= {"flightbase-postgresql", "flightbase-oci-auth", "flightbase-metrics", "hub"}
    assert named["PersistentVolumeClaim"] >= {"flightbase-oci", "flightbase-datasets", "flightbase-workspaces"}
    assert named["Pod"] == {"flightbase-postgresql-0"}
    for kind, names in named.items():
        missing = names - rendered[kind]
        assert not missing, f"docs/kubernetes.md names {kind} {sorted(missing)}; the chart renders {sorted(rendered[kind])}"


def test_the_database_commands_match_the_bundled_postgresql(rendered):
    text = section("Backup and restore")
    sts = next(o for o in rendered["_manifest"] if o["kind"] == "StatefulSet")
    env = {e["name"]: e.get("value") for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert set(re.findall(r"(?:pg_dump|pg_restore) -U (\S+)", text)) == {env["POSTGRES_USER"]}
    databases = set()
    for obj in rendered["_manifest"]:
        if obj["kind"] == "Deployment":
            for e in obj["spec"]["template"]["spec"]["containers"][0].get("env", []):
                if e["name"].endswith("_DB_URL"):
                    databases.add(e["value"].rsplit("/", 1)[1])
    assert databases == {"jobqueue", "registry"}
    for loop in re.findall(r"for db in ([a-z ]+); do", text):
        assert set(loop.split()) == databases, loop


def test_the_backup_pod_is_valid_and_runs_as_the_charts_user(rendered):
    pod = yaml.safe_load(code_block(section("Backup and restore"), "apiVersion: v1"))
    assert pod["metadata"]["name"] == HELPER_POD
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    registry = next(o for o in rendered["_manifest"] if o["kind"] == "Deployment"
                    and o["metadata"]["name"] == "flightbase-registry")
    chart_sc = registry["spec"]["template"]["spec"]["securityContext"]
    for key in ("runAsUser", "runAsGroup", "fsGroup"):
        assert pod["spec"]["securityContext"][key] == chart_sc[key], key
    claims = {v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"]}
    assert claims <= rendered["PersistentVolumeClaim"]
    image = registry["spec"]["template"]["spec"]["containers"][0]["image"]
    assert pod["spec"]["containers"][0]["image"] == image  # the example values' registry and tag
