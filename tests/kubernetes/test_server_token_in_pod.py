"""A known limitation, pinned: a notebook server's hub API token is in its pod's spec.

JupyterHub hands a server its token in the environment (``Spawner.get_env``:
``JUPYTERHUB_API_TOKEN`` and ``JPY_API_TOKEN``), and kubespawner 7 writes that environment
into the pod's container as literal values: anyone who may read pods in the notebooks'
namespace reads the token. kubespawner has no option to take it from a Secret (the one
Secret it makes is internal SSL's certificates; jupyterhub/kubespawner#398, PRs #471 and
#693 unmerged), and Zero to JupyterHub does nothing about it either, so Flightbase does not
make its own mechanism: docs/security.md and docs/kubernetes.md say so, with the mitigation
(who may read pods in that namespace). This test is the real ``get_pod_manifest()`` of
``FlightbaseKubeSpawner`` (see kube_pods.py for how it is built, with the
stub API server's kubeconfig, a mock because no cluster runs here): it fails when kubespawner
stops putting the token there (the docs are then out of date), and checks what limits the
exposure on the pod's side: the notebook's own code gets no Kubernetes credentials with
which to read other people's pods, and the token is limited to the scopes of a server token.
"""

from __future__ import annotations

from flightbase_server.hub import rbac
from flightbase_spawner.objects import NotebookOptions

from .kube_pods import TOKEN, kubeconfig, manifest  # noqa: F401 (kubeconfig: a fixture)


def test_the_servers_token_is_a_literal_in_the_pod_spec_and_the_pod_reads_no_other_pod(kubeconfig):  # noqa: F811
    pod = manifest(NotebookOptions(workspace="vision", owner="alice", image="reg/notebook:1", gpus=0))
    (container,) = pod["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    # the limitation: the token as a plain value (not a secretKeyRef), in both of JupyterHub's names
    for name in ("JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN"):
        assert env[name] == {"name": name, "value": TOKEN}
    assert not any("valueFrom" in e for e in container["env"])
    # kubespawner offers no switch for it: its only Secret-related options are internal SSL's and pull secrets
    # (imported here, not with the module: kubernetes_asyncio reads KUBECONFIG when it is first imported)
    from kubespawner import KubeSpawner

    options = {n for n in KubeSpawner.class_traits(config=True) if "secret" in n or "token" in n}
    assert options == {"automount_service_account_token", "image_pull_secrets", "secret_mount_path",
                       "secret_name_template", "server_token_scopes"}
    # the notebook's code has no service account token: it cannot list the namespace's pods itself
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert not pod["spec"].get("serviceAccountName")


def test_the_servers_token_carries_only_its_owners_flightbase_scopes():
    """What a read token can do: the server's own scopes (JupyterHub gives the subset its owner
    holds), never a service's or an administrator's."""
    scopes = rbac.server_token_scopes()
    assert not [s for s in scopes if s.startswith("admin:")]
    assert [s for s in scopes if s.startswith("access:servers")] == ["access:servers!server"]  # its own server only
    assert [s for s in scopes if s.startswith("read:users")] == ["read:users:name!user", "read:users:groups!user"]
