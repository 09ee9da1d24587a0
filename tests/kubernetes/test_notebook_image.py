"""The cluster's notebook image, ``images/notebook/Dockerfile``, built here for real on the
training image's CPU flavour (``--build-arg BASE=...``, pip pointed at wheels collected on
the host with ``PIP_NO_INDEX``/``PIP_FIND_LINKS``; ``tests/kubernetes/images/build.sh``,
cached by content), and its entrypoint started as a notebook pod runs it: the image's own
command (``jupyterhub-singleuser``), uid 1000, no capability, with the environment
KubeSpawner gives a server.  The hub is a stub here (a small HTTP server at the hub's
address answering its API root with JupyterHub's version header and recording what it is
asked): what the server needs of a hub at start-up, where it exits when no hub answers.
The real hub runs in ``tests/kubernetes/test_deployment.py``.  The server starts, checks in
with its hub using its token, serves its API under the user's prefix, and sends a browser
to the hub's OAuth endpoint.  The CUDA flavour is not built here (NVIDIA's images cannot
be pulled; images/README.md).
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request

import pytest

from tests.helpers.containers import docker
from tests.kubernetes.cluster_images import TRAINING, build

pytestmark = pytest.mark.slow

PREFIX = "/user/alice/"


@pytest.fixture(scope="module")
def image():
    return build("notebook")


def run(image: str, *cmd: str) -> str:
    return docker("run", "--rm", "--user", "1000:1000", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
                  "--network", "none", image, *cmd).stdout


def test_the_notebook_image_is_the_training_image_plus_jupyter_and_flightbase(image):
    config = json.loads(docker("image", "inspect", image).stdout)[0]["Config"]
    assert config["Cmd"] == ["jupyterhub-singleuser"]
    assert (config["User"], config["WorkingDir"]) == ("1000", "/workspace")
    assert "8888/tcp" in config["ExposedPorts"]
    training = json.loads(docker("image", "inspect", TRAINING).stdout)[0]
    layers = json.loads(docker("image", "inspect", image).stdout)[0]["RootFS"]["Layers"]
    assert layers[:len(training["RootFS"]["Layers"])] == training["RootFS"]["Layers"]  # built FROM it
    assert run(image, "jupyterhub-singleuser", "--version").strip().startswith("6.1.0")
    out = run(image, "python3", "-c", "import torch, horovod.torch as hvd, flightbase.client, flightbase.metrics, "
              "flightbase_labext, jupyterlab; print(hvd.mpi_built(), jupyterlab.__version__)")
    assert out.split() == ["True", "4.6.6"], out
    servers = re.sub(r"\x1b\[[0-9;]*m", "", run(image, "sh", "-c", "jupyter server extension list 2>&1"))
    assert re.search(r"flightbase_labext enabled", servers) and re.search(r"flightbase_labext \S+ OK", servers), servers
    labs = re.sub(r"\x1b\[[0-9;]*m", "", run(image, "sh", "-c", "jupyter labextension list 2>&1"))
    assert re.search(r"flightbase-labext v\S+ enabled\s+OK", labs), labs


def get(url: str) -> tuple[int, dict, bytes]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


# The hub's stand-in: its API root with the version header (JupyterHub's singleuser
# check_hub_version), and a line per request with the token it carried.
HUB_STUB = """import http.server, json
class Hub(http.server.BaseHTTPRequestHandler):
    def answer(self):
        print("HUB", self.command, self.path, self.headers.get("Authorization", ""), flush=True)
        body = json.dumps({"version": "6.1.0"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-JupyterHub-Version", "6.1.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = answer
http.server.ThreadingHTTPServer(("0.0.0.0", 8081), Hub).serve_forever()
"""


def test_jupyterhub_singleuser_starts_and_answers_as_uid_1000_with_no_capability(image):
    name = f"flightbase-notebook-smoke-{time.monotonic_ns()}"
    network, hub = f"{name}-net", f"{name}-hub"
    env = {  # what KubeSpawner sets (JupyterHub's Spawner.get_env); the hub's address answers nothing here
        "JUPYTERHUB_API_TOKEN": "a" * 32, "JUPYTERHUB_CLIENT_ID": "jupyterhub-user-alice",
        "JUPYTERHUB_API_URL": "http://hub:8081/hub/api", "JUPYTERHUB_ACTIVITY_URL": "http://hub:8081/hub/api/users/alice/activity",
        "JUPYTERHUB_BASE_URL": "/", "JUPYTERHUB_HOST": "", "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{PREFIX}oauth_callback",
        "JUPYTERHUB_OAUTH_SCOPES": json.dumps(["access:servers!server=alice/"]),
        "JUPYTERHUB_SERVICE_PREFIX": PREFIX, "JUPYTERHUB_SERVICE_URL": f"http://0.0.0.0:8888{PREFIX}",
        "JUPYTERHUB_USER": "alice", "JUPYTERHUB_SERVER_NAME": "",
    }
    args = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
    docker("network", "create", network)
    try:
        docker("run", "-d", "--name", hub, "--network", network, "--network-alias", "hub", "--user", "1000:1000",
               "--cap-drop", "ALL", image, "python3", "-c", HUB_STUB)
        docker("run", "-d", "--name", name, "--network", network, "--user", "1000:1000", "--cap-drop", "ALL",
               "--security-opt", "no-new-privileges", "-p", "127.0.0.1::8888", *args, image)
        port = docker("port", name, "8888/tcp").stdout.split("\n")[0].rsplit(":", 1)[1]
        base = f"http://127.0.0.1:{port}{PREFIX}"
        deadline, status = time.monotonic() + 120, None
        while time.monotonic() < deadline:
            state = json.loads(docker("inspect", name).stdout)[0]["State"]
            assert state["Running"], f"jupyterhub-singleuser exited {state['ExitCode']}:\n{docker('logs', name).stderr[-4000:]}"
            try:
                status, _, body = get(f"{base}api")
                if status == 200:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(1)
        logs = docker("logs", name)
        assert status == 200, f"no answer from {base}api:\n{logs.stdout[-2000:]}\n{logs.stderr[-4000:]}"
        assert "version" in json.loads(body)  # jupyter_server's API, unauthenticated
        # a browser without the hub's cookie is sent to the hub's OAuth endpoint for this server
        status, headers, _ = get(f"{base}lab")
        assert status == 302 and "/hub/api/oauth2/authorize" in headers["Location"], (status, headers)
        assert "client_id=jupyterhub-user-alice" in headers["Location"]
        # and the API refuses what the hub has not authorised
        assert get(f"{base}api/contents")[0] == 403
        top = docker("top", name, "-o", "pid,uid,cmd").stdout
        assert all(line.split()[1] == "1000" for line in top.splitlines()[1:]), top
        # it checked its hub's version at start-up, and reports its activity with its token
        deadline, asked = time.monotonic() + 30, ""
        while time.monotonic() < deadline and "activity" not in asked:
            asked = docker("logs", hub).stdout
            time.sleep(1)
        assert "HUB GET /hub/api " in asked, asked
        assert f"HUB POST /hub/api/users/alice/activity token {'a' * 32}" in asked, asked
    finally:
        docker("rm", "-f", name, hub, check=False)
        docker("network", "rm", network, check=False)
