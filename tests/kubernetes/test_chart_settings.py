"""The chart sets every setting a service needs in a cluster, and its URLs name the chart's Services.

Which settings a service needs is not a list here: it is the metadata of the services'
settings objects (``flightbase_server.settings.setting``: ``services`` and ``cluster``), for
``PlatformSettings``, ``HubServiceEnv`` and the registry's ``RegistrySettings``. The chart is
rendered by the real Helm engine (``chart.render``: an install against a stub API server,
see its docstring), and each service's pod environment, config maps included, is read as the
kubelet would assemble it and parsed by the services' own ``from_env``.

The hub and its proxy are z2jh's (the subchart is not rendered here: it cannot be fetched);
their Service names and ports are z2jh's own, from its templates
(jupyterhub/templates/hub/service.yaml: ``hub`` port 8081; proxy/service.yaml: ``proxy-public``
port 80, and ``proxy-http`` port 8000 when automatic HTTPS puts the autohttps pod in front).
"""

from __future__ import annotations

from dataclasses import fields
from urllib.parse import urlsplit

import pytest
import yaml

from flightbase_server.settings import HubServiceEnv, PlatformSettings, documented_fields, env_name
from flightbase_registry.config import RegistrySettings
from flightbase_registry.builtin import runs_as

from .chart import CHART, render

SETTINGS = (PlatformSettings, HubServiceEnv, RegistrySettings)
# The chart's pods of each service (Deployment name, for the default fullnameOverride "flightbase")
PODS = {"jobqueue": "jobqueue", "registry": "registry"}
Z2JH_HUB = ("hub", 8081)
Z2JH_PROXY_PUBLIC = ("proxy-public", 80)
Z2JH_PROXY_HTTP = ("proxy-http", 8000)
SECRET = "<from a Secret>"


def needed_in_cluster(service: str) -> dict[str, str]:
    """{variable: the field it fills} of every setting ``service`` needs set in a cluster."""
    return {env_name(f): f"{cls.__name__}.{f.name}" for cls in SETTINGS for f in documented_fields(cls)
            if f.metadata["cluster"] and service in f.metadata["services"]}


def pod_env(manifest: list[dict], name: str) -> dict[str, str]:
    """The environment of the Deployment's container: its config maps, then its env (which wins)."""
    obj = next(o for o in manifest if o["kind"] == "Deployment" and o["metadata"]["name"] == name)
    container = obj["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        ref = source["configMapRef"]["name"]
        env.update(next(o for o in manifest if o["kind"] == "ConfigMap" and o["metadata"]["name"] == ref)["data"])
    for e in container.get("env", []):
        env[e["name"]] = e["value"] if "value" in e else SECRET
    return env


def service_address(manifest: list[dict], component: str) -> tuple[str, int]:
    """(name, http port) of the chart's Service of ``component``."""
    svc = next(o for o in manifest if o["kind"] == "Service"
               and o["spec"]["selector"].get("app.kubernetes.io/component") == component)
    return svc["metadata"]["name"], next(p["port"] for p in svc["spec"]["ports"] if p["name"] == "http")


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname, parts.port or {"http": 80, "https": 443}[parts.scheme]


def test_the_settings_objects_say_what_a_cluster_needs():
    """Guards the metadata this test reads: the chart test is only as good as it."""
    assert {"FLIGHTBASE_DATA_DIR", "FLIGHTBASE_BACKEND", "FLIGHTBASE_DEPLOYMENT", "FLIGHTBASE_REGISTRY_URL",
            "FLIGHTBASE_PROXY_URL", "FLIGHTBASE_JOBQUEUE_DB_URL", "JUPYTERHUB_API_URL",
            "JUPYTERHUB_API_TOKEN", "JUPYTERHUB_SERVICE_NAME", "JUPYTERHUB_CLIENT_ID"} <= set(needed_in_cluster("jobqueue"))
    assert {"FLIGHTBASE_DATA_DIR", "FLIGHTBASE_BACKEND", "FLIGHTBASE_REGISTRY_DB_URL",
            "JUPYTERHUB_API_URL", "JUPYTERHUB_SERVICE_NAME", "JUPYTERHUB_CLIENT_ID"} <= set(needed_in_cluster("registry"))
    for cls in SETTINGS:
        for f in documented_fields(cls):
            assert f.metadata["help"].strip() and set(f.metadata["services"]) <= {"hub", "jobqueue", "registry"}
    assert {f.name for cls in SETTINGS for f in documented_fields(cls)} == {
        f.name for cls in SETTINGS for f in fields(cls)}  # every field is documented


@pytest.mark.parametrize("release", [None, {"fullnameOverride": "acme"}], ids=["default", "renamed"])
def test_every_service_gets_what_it_needs_with_urls_to_the_charts_services(tmp_path, release):
    manifest, _ = render(tmp_path, release)
    prefix = (release or {}).get("fullnameOverride", "flightbase")
    for service, suffix in PODS.items():
        env = pod_env(manifest, f"{prefix}-{suffix}")
        missing = sorted(f"{var} ({field})" for var, field in needed_in_cluster(service).items() if var not in env)
        assert not missing, f"the chart does not set these for the {service} pod: {missing}"
        assert not [var for var in needed_in_cluster(service) if env[var] == ""], env
        # the services' own parsers accept what the chart sets
        settings = PlatformSettings.from_env(env)
        hub = HubServiceEnv.from_env(env).require("api_url", "api_token", "service_prefix", "service_url")
        assert settings.backend == "kubernetes"
        assert address(hub.api_url) == Z2JH_HUB and urlsplit(hub.api_url).path == "/hub/api"
        assert hub.service_prefix == f"/services/{service}/"
        # the service's name and OAuth client in the hub: what z2jh registers for hub.services.<service>
        assert (hub.service_name, hub.client_id) == (service, f"service-{service}")
        assert hub.access_scopes() == {f"access:services!service={service}"}
        assert address(hub.service_url)[1] == service_address(manifest, service)[1]  # the Service's port
        if service == "registry":
            RegistrySettings.load(tmp_path, environ={k: v for k, v in env.items() if v != SECRET})
            assert runs_as(settings.backend) == "container image of the pod"
        else:
            assert settings.deployment == "kubernetes"  # what /info reports
            assert address(settings.registry_api_url()) == service_address(manifest, "registry")
            assert address(settings.proxy_base_url()) == Z2JH_PROXY_PUBLIC
            assert settings.registry_api_url() != f"http://127.0.0.1:{settings.registry_port}"


def test_with_automatic_https_the_culler_goes_around_the_autohttps_pod(tmp_path):
    """z2jh's letsencrypt HTTPS puts its autohttps pod behind proxy-public (plain HTTP there only
    redirects); the proxy itself is then proxy-http."""
    https = {"jupyterhub": {"enabled": False, "proxy": {"https": {"enabled": True, "type": "letsencrypt",
                                                                  "hosts": ["hub.example.org"]}}}}
    manifest, _ = render(tmp_path, https)
    settings = PlatformSettings.from_env(pod_env(manifest, "flightbase-jobqueue"))
    assert address(settings.proxy_base_url()) == Z2JH_PROXY_HTTP
    # offloaded TLS (an ingress or a load balancer in front): proxy-public's http port is the proxy's
    https["jupyterhub"]["proxy"]["https"]["type"] = "offload"
    manifest, _ = render(tmp_path / "offload", https)
    settings = PlatformSettings.from_env(pod_env(manifest, "flightbase-jobqueue"))
    assert address(settings.proxy_base_url()) == Z2JH_PROXY_PUBLIC


def secret_ref(manifest: list[dict], deployment: str, variable: str) -> str:
    obj = next(o for o in manifest if o["kind"] == "Deployment" and o["metadata"]["name"] == deployment)
    env = obj["spec"]["template"]["spec"]["containers"][0]["env"]
    return next(e for e in env if e["name"] == variable)["valueFrom"]["secretKeyRef"]["name"]


@pytest.mark.parametrize("override, prefix", [("", ""), ("jh", "jh-"), (None, "flightbase-jupyterhub-")],
                         ids=["z2jh-default", "renamed", "null"])
def test_the_hub_and_proxy_names_follow_z2jhs_fullname_override(tmp_path, override, prefix):
    """z2jh names its Services and the hub's Secret from its own fullnameOverride (its
    _helpers-names.tpl): a string is the prefix ("" none), null gives <release>-jupyterhub."""
    manifest, _ = render(tmp_path, {"jupyterhub": {"enabled": False, "fullnameOverride": override}})
    for service in PODS.values():
        env = pod_env(manifest, f"flightbase-{service}")
        assert address(HubServiceEnv.from_env(env).api_url) == (f"{prefix}hub", 8081)
        assert secret_ref(manifest, f"flightbase-{service}", "JUPYTERHUB_API_TOKEN") == f"{prefix}hub"
    settings = PlatformSettings.from_env(pod_env(manifest, "flightbase-jobqueue"))
    assert address(settings.proxy_base_url()) == (f"{prefix}proxy-public", 80)


def test_the_built_in_images_are_pulled_from_the_charts_image_registry(tmp_path):
    """The registry names the built-ins flightbase/<name>:<tag>; in a cluster they are <images.registry>/<name>."""
    from flightbase_jobqueue.backends.kubernetes.backend import cluster_image
    from flightbase_jobqueue.backends.kubernetes.settings import KubernetesSettings
    from flightbase_registry.builtin import BUILTIN_IMAGES

    manifest, _ = render(tmp_path, {"images": {"registry": "registry.example.org/fb", "tag": "0.1.0"}})
    settings = KubernetesSettings.from_env(pod_env(manifest, "flightbase-jobqueue"))
    assert {cluster_image(i.reference, settings) for i in BUILTIN_IMAGES} == {
        "registry.example.org/fb/training-base:0.1.0", "registry.example.org/fb/notebook:0.1.0"}


def test_the_hub_and_the_jobqueue_agree_on_the_registry(tmp_path):
    """The hub's spawner (flightbase_server/hub/jupyterhub_config/kubernetes.py) and the jobqueue read FLIGHTBASE_REGISTRY_URL;
    the chart gives both the registry's Service, and z2jh routes /services/registry/ there."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())["jupyterhub"]["hub"]
    manifest, _ = render(tmp_path)
    jobqueue = pod_env(manifest, "flightbase-jobqueue")
    assert values["extraEnv"]["FLIGHTBASE_REGISTRY_URL"] == jobqueue["FLIGHTBASE_REGISTRY_URL"]
    assert values["services"]["registry"]["url"] == jobqueue["FLIGHTBASE_REGISTRY_URL"]
    assert address(values["services"]["jobqueue"]["url"]) == service_address(manifest, "jobqueue")
