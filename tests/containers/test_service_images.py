"""The cluster's service images, jobqueue, registry-service and hub, built for real and run as the chart runs them.

``scripts/service-images.sh`` builds them (a module fixture, cached by content:
a second build of unchanged sources builds nothing) from this checkout's wheels
on ``flightbase/debian:bookworm``. The build and the runs skip, with the
reason, where no Docker engine answers or the base image is missing
(``scripts/containers.sh base`` makes it); the hadolint checks need neither.

Each image's entrypoint is run with the command, the environment (plain
values and the jobqueue's ConfigMap), the user and the security settings of
the pod spec the real Helm engine renders (``tests/kubernetes/test_chart.py``'s
``render``), as the kubelet would: read-only root, ``/tmp`` a tmpfs, no
capability, ``no-new-privileges``. What differs, because no cluster runs here:

- the data directory is one temporary volume, and the databases are SQLite
  in it (the chart's PostgreSQL URLs are replaced);
- secrets (hub tokens, the metrics token, the OCI registry's account) get test
  values;
- the jobqueue's Kubernetes API is a stub (a mock: no API server can run here)
  reached through a mounted kubeconfig instead of the in-cluster service
  account; it answers every list with no objects and every watch with nothing;
- no hub runs: start-up and ``/health`` do not call it (the jobqueue's lease
  check logs that ``hub`` does not resolve), and no OCI registry runs.

The hub image is smoke-tested here (its entrypoint's ``jupyterhub --version``,
its Python modules and its ``jupyterhub_config.d`` file, as uid 1000 with no
capability); it is run as z2jh's rendered hub pod by
``tests/kubernetes/test_deployment.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.helpers.containers import docker, lint, network_gateway

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "service-images.sh"
IMAGES = ROOT / "images"
DOCKERFILES = [IMAGES / name / "Dockerfile" for name in ("service-base", "jobqueue", "registry-service", "hub")]
BASE = "flightbase/debian:bookworm"
LABEL = "ai.flightbase.content-hash"
# the chart's container security (flightbase.containerSecurity), as docker run options
AS_THE_CHART = ("--read-only", "--tmpfs", "/tmp:rw,nosuid,nodev", "--cap-drop", "ALL",
                "--security-opt", "no-new-privileges")


def refs() -> dict[str, str]:
    out = subprocess.run([str(SCRIPT), "refs"], capture_output=True, text=True, check=True).stdout.split()
    return {ref.rsplit("/", 1)[1].split(":")[0]: ref for ref in out}


# ---- no engine needed ---------------------------------------------------------------------

@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_hadolint_finds_nothing(dockerfile):
    result = lint(dockerfile)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_script_refuses_an_unknown_step():
    result = subprocess.run([str(SCRIPT), "bogus"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["service-images: unknown step 'bogus' (build, push, requirements, refs)"]


def test_the_base_installs_what_pyproject_names():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    client = tomllib.loads((ROOT / "client" / "pyproject.toml").read_text())["project"]
    out = subprocess.run([str(SCRIPT), "requirements"], capture_output=True, text=True, check=True).stdout
    lines = [line for line in out.splitlines() if not line.startswith("#")]
    extras = project["optional-dependencies"]
    # both distributions' dependencies; the client's distribution itself is our own wheel
    server = [r for r in project["dependencies"] if not r.startswith("flightbase-")]
    assert "flightbase-client==0.1.0" in project["dependencies"]
    assert lines == ["pip", *client["dependencies"], *server, *extras["postgres"], *extras["kubernetes"]]


# ---- the chart's images -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> list[dict]:
    pytest.importorskip("helm_sdkpy", reason="helm-sdkpy is not installed (pip install --ignore-requires-python helm-sdkpy)")
    from ..kubernetes.chart import render

    return render(tmp_path_factory.mktemp("chart"))[0]


def container(manifest: list[dict], deployment: str) -> tuple[dict, dict]:
    obj = next(o for o in manifest if o["kind"] == "Deployment" and o["metadata"]["name"] == deployment)
    pod = obj["spec"]["template"]["spec"]
    return pod, pod["containers"][0]


def test_the_chart_names_the_images_the_script_builds(manifest):
    """Every Flightbase service Deployment runs an image the script builds, by the same
    reference; the images it does not build are the chart's third-party ones."""
    built = refs()
    assert container(manifest, "flightbase-jobqueue")[1]["image"] == built["jobqueue"]
    assert container(manifest, "flightbase-registry")[1]["image"] == built["registry-service"]
    images = {c["image"] for o in manifest if o["kind"] in ("Deployment", "StatefulSet")
              for c in o["spec"]["template"]["spec"]["containers"]}
    assert images - set(built.values()) == {"docker.io/library/registry:2.8.3", "docker.io/library/postgres:16.4"}
    for name in built:
        assert (IMAGES / name / "Dockerfile").is_file()


def test_every_image_the_values_name_has_a_dockerfile():
    """The subchart's hub and notebook images (not rendered here: the Zero to JupyterHub
    subchart cannot be fetched) and the services' have a Dockerfile of that name, in the
    chart's registry and tag; the others are third-party images, pulled as they are."""
    import yaml

    values = yaml.safe_load((ROOT / "helm" / "flightbase" / "values.yaml").read_text())
    registry, tag = values["images"]["registry"], values["images"]["tag"]
    ours = [values["jobqueue"]["image"], values["registry"]["image"]]
    for part in ("hub", "singleuser"):
        image = values["jupyterhub"][part]["image"]
        assert image["tag"] == tag and image["name"].startswith(registry + "/")
        ours.append(image["name"][len(registry) + 1:])
    assert ours == ["jobqueue", "registry-service", "hub", "notebook"]
    for name in ours:
        assert (IMAGES / name / "Dockerfile").is_file(), name
    assert values["ociRegistry"]["image"].startswith("docker.io/library/registry:")
    assert values["postgresql"]["image"].startswith("docker.io/library/postgres:")


@pytest.fixture(scope="module")
def built() -> dict:
    """The images, built (or found up to date) by the script; what each build took."""
    if shutil.which("docker") is None:
        pytest.skip("no docker client here; `make test` installs and starts an engine as root")
    if subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode != 0:
        pytest.skip("no Docker engine answers `docker info` (scripts/containers.sh engine starts one as root)")
    if subprocess.run(["docker", "image", "inspect", BASE], capture_output=True).returncode != 0:
        pytest.skip(f"{BASE} is missing (scripts/containers.sh base makes it)")
    start = time.monotonic()
    first = subprocess.run([str(SCRIPT), "build"], capture_output=True, text=True, timeout=1800)
    first_s = time.monotonic() - start
    assert first.returncode == 0, first.stdout + first.stderr
    start = time.monotonic()
    again = subprocess.run([str(SCRIPT), "build"], capture_output=True, text=True, timeout=600)
    again_s = time.monotonic() - start
    assert again.returncode == 0, again.stdout + again.stderr
    print(f"service images: build {first_s:.0f}s, unchanged rebuild {again_s:.0f}s")
    return {"refs": refs(), "first": first.stdout, "again": again.stdout}


def test_an_unchanged_checkout_builds_nothing(built):
    for ref in ("flightbase/service-base:0.1.0", *built["refs"].values()):
        assert f"{ref} is up to date" in built["again"], built["again"]
        label = docker("image", "inspect", "-f", f'{{{{index .Config.Labels "{LABEL}"}}}}', ref).stdout.strip()
        assert label.startswith("sha256:")


@pytest.mark.parametrize("name", ["jobqueue", "registry-service", "hub"])
def test_the_image_runs_as_the_charts_user(built, name):
    ref = built["refs"][name]
    assert docker("image", "inspect", "-f", "{{.Config.User}}", ref).stdout.strip() == "1000"
    out = docker("run", "--rm", *AS_THE_CHART, ref, "id").stdout
    assert out.startswith("uid=1000(flightbase) gid=1000(flightbase)"), out


def test_the_jobqueue_image_has_the_built_in_models(built):
    """The models are the jobqueue package's data: the image has every model's manifest and
    script where ``builtin.models_root()`` looks, with no FLIGHTBASE_BUILTIN_MODELS_DIR set, and
    its catalogue lists the same models as this checkout's."""
    from flightbase_jobqueue import builtin

    probe = ("import json; from flightbase_jobqueue import builtin; "
             "print(json.dumps({n: (builtin.model_dir(n) / 'train.py').is_file() "
             "for n in sorted(builtin.load_catalogue())}))")
    out = docker("run", "--rm", *AS_THE_CHART, built["refs"]["jobqueue"], "python3", "-c", probe).stdout
    listed = json.loads(out.strip().splitlines()[-1])
    here = builtin.load_catalogue()
    assert len(here) >= 4 and listed == {name: True for name in sorted(here)}, out


class StubKubeApi:
    """A stub Kubernetes API server (a mock: no API server runs here) on the Docker bridge's
    gateway, where a container reaches it: every list is empty, every watch ends with nothing."""

    def __init__(self, host: str):
        self.paths: list[str] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                stub.paths.append(self.path)
                body = b"" if "watch=" in self.path else json.dumps(
                    {"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": []}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                if not body:
                    time.sleep(1)

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def bridge_gateway() -> str:
    return network_gateway("bridge")


def chart_env(manifest: list[dict], c: dict) -> dict[str, str]:
    """The container's environment as the kubelet would set it: the ConfigMaps it names and its
    plain values; secrets get test values, and the databases are SQLite in the data volume."""
    env: dict[str, str] = {}
    for source in c.get("envFrom", []):
        name = source["configMapRef"]["name"]
        env.update(next(o for o in manifest if o["kind"] == "ConfigMap" and o["metadata"]["name"] == name)["data"])
    for entry in c.get("env", []):
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        else:
            env[entry["name"]] = "smoke-" + entry["name"].lower()
    for key in ("FLIGHTBASE_JOBQUEUE_DB_URL", "FLIGHTBASE_REGISTRY_DB_URL"):
        if key in env:
            env[key] = f"sqlite:////srv/flightbase/{key.split('_')[1].lower()}.sqlite"
    env.pop("FLIGHTBASE_DB_PASSWORD", None)
    return env


def run_as_the_chart(manifest, deployment: str, ref: str, tmp_path: Path, extra_env=(), mounts=()) -> tuple[str, str]:
    """Start the Deployment's container from the image; (its container id, its health URL)."""
    pod, c = container(manifest, deployment)
    data = tmp_path / "srv"
    data.mkdir()
    try:
        os.chown(data, 1000, 1000)  # the pod's fsGroup makes its volumes the service's
    except PermissionError:  # not root: anyone may write it
        data.chmod(0o777)
    env = dict(chart_env(manifest, c), **dict(extra_env))
    sc = pod["securityContext"]
    port = c["ports"][0]["containerPort"]
    args = ["run", "-d", *AS_THE_CHART, "--user", f"{sc['runAsUser']}:{sc['runAsGroup']}",
            "-v", f"{data}:/srv/flightbase", "-p", f"127.0.0.1::{port}", *mounts]
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    cid = docker(*args, "--entrypoint", c["command"][0], ref, *c["command"][1:]).stdout.strip()
    host_port = docker("port", cid, str(port)).stdout.split()[0]
    return cid, f"http://{host_port}{c['readinessProbe']['httpGet']['path']}"


def wait_healthy(cid: str, url: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if docker("inspect", "-f", "{{.State.Running}}", cid).stdout.strip() != "true":
            raise AssertionError("the container exited:\n" + docker("logs", cid, check=False).stderr[-4000:])
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return json.loads(resp.read())
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer in {timeout}s:\n" + docker("logs", cid, check=False).stderr[-4000:])


def test_the_jobqueue_starts_as_the_chart_runs_it(built, manifest, tmp_path):
    gateway = bridge_gateway()
    kube = StubKubeApi(gateway)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "stub",
        "clusters": [{"name": "stub", "cluster": {"server": kube.url}}],
        "users": [{"name": "stub", "user": {"token": "stub"}}],
        "contexts": [{"name": "stub", "context": {"cluster": "stub", "user": "stub", "namespace": "flightbase"}}]}))
    kubeconfig.chmod(0o644)
    cid = None
    try:
        cid, url = run_as_the_chart(manifest, "flightbase-jobqueue", built["refs"]["jobqueue"], tmp_path,
                                    extra_env={"KUBECONFIG": "/etc/flightbase/kubeconfig"},
                                    mounts=("-v", f"{kubeconfig}:/etc/flightbase/kubeconfig:ro"))
        health = wait_healthy(cid, url)
        assert health["status"] == "ok" and health["service"] == "jobqueue"
        # its database is SQLite in the volume, and it listed its objects on the (stub) API server
        assert (tmp_path / "srv" / "jobqueue.sqlite").exists()
        assert any(p.startswith("/api/v1/namespaces/flightbase/pods?") for p in kube.paths), kube.paths
        assert docker("exec", cid, "id", "-u").stdout.strip() == "1000"
    finally:
        if cid:
            docker("rm", "-f", cid, check=False)
        kube.close()


def test_the_registry_starts_as_the_chart_runs_it(built, manifest, tmp_path):
    account = tmp_path / "oci-account"
    account.mkdir()
    (account / "password").write_text("smoke-oci-password")
    (account / "password").chmod(0o444)
    cid = None
    try:
        cid, url = run_as_the_chart(manifest, "flightbase-registry", built["refs"]["registry-service"], tmp_path,
                                    mounts=("-v", f"{account}:/etc/flightbase/oci-registry:ro"))
        health = wait_healthy(cid, url)
        assert health["status"] == "ok" and health["service"] == "registry"
        assert (tmp_path / "srv" / "registry.sqlite").exists()
        assert docker("exec", cid, "id", "-u").stdout.strip() == "1000"
    finally:
        if cid:
            docker("rm", "-f", cid, check=False)


# z2jh's hub pod: its config in /usr/local/etc/jupyterhub (mounted by the chart), this one in its config.d
HUB_CONFIG_D = "/usr/local/etc/jupyterhub/jupyterhub_config.d/flightbase.py"


def test_the_hub_image_is_what_z2jhs_hub_pod_expects(built):
    """The account 1000, the working directory /srv/jupyterhub (its own), z2jh's config command,
    and flightbase_server/hub/jupyterhub_config/kubernetes.py as the config.d file z2jh's jupyterhub_config.py loads."""
    ref = built["refs"]["hub"]
    config = json.loads(docker("image", "inspect", "-f", "{{json .Config}}", ref).stdout)
    assert config["User"] == "1000" and config["WorkingDir"] == "/srv/jupyterhub"
    assert config["Cmd"] == ["jupyterhub", "--config", "/usr/local/etc/jupyterhub/jupyterhub_config.py"]
    assert "8081/tcp" in config["ExposedPorts"]
    shipped = docker("run", "--rm", *AS_THE_CHART, "--entrypoint", "cat", ref, HUB_CONFIG_D).stdout
    assert shipped == (ROOT / "flightbase_server" / "hub" / "jupyterhub_config" / "kubernetes.py").read_text()
    owner = docker("run", "--rm", *AS_THE_CHART, "--entrypoint", "stat", ref, "-c", "%u:%g", "/srv/jupyterhub").stdout
    assert owner.strip() == "1000:1000"


def test_the_hub_entrypoint_starts(built):
    """`jupyterhub` (the pod's command) runs as uid 1000 with no capability, and the hub's
    Python has what its config loads: pycurl (z2jh's HTTP client), kubernetes_asyncio,
    NativeAuthenticator, and the config.d file runs and its spawner (kubespawner's) imports."""
    ref = built["refs"]["hub"]
    version = docker("run", "--rm", *AS_THE_CHART, "--user", "1000:1000", ref, "jupyterhub", "--version").stdout
    assert version.strip().startswith("6."), version
    # the config.d file run as z2jh's jupyterhub_config.py runs it (exec with its `c`), then the
    # spawner class it names imported as JupyterHub imports it
    probe = (
        "import os, importlib, pycurl, kubernetes_asyncio, nativeauthenticator\n"
        "from traitlets.config import Config\n"
        "c = Config()\n"
        f"exec(compile(open({HUB_CONFIG_D!r}).read(), {HUB_CONFIG_D!r}, 'exec'), {{'c': c}})\n"
        "module, _, name = c.JupyterHub.spawner_class.rpartition('.')\n"
        "spawner = getattr(importlib.import_module(module), name)\n"
        "from kubespawner import KubeSpawner\n"
        "assert issubclass(spawner, KubeSpawner)\n"
        "print(os.getuid(), os.getcwd(), spawner.__name__, c.JupyterHub.default_url)\n"
    )
    out = docker("run", "--rm", *AS_THE_CHART, "--user", "1000:1000", ref, "python", "-c", probe).stdout
    assert out.split() == ["1000", "/srv/jupyterhub", "FlightbaseKubeSpawner", "/hub/home"], out
