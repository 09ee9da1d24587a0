"""The kubelet stand-in (tests/kubernetes/podrun.py): what a pod's containers see.

Real Docker containers of flightbase/debian:bookworm, started from pod specs
written here; each test reads back, from inside the container, what the
kubelet would have given it (environment, user, groups, capabilities, files,
names on the network).  Skips, with the reason, without root or a Docker
engine or the image.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers.containers import image_or_skip
from tests.kubernetes.podrun import PodError, PodFailed, PodRunner, docker, expand, pod_template_of, quantity_bytes

BASE = "flightbase/debian:bookworm"


# -- pure parts ----------------------------------------------------------------------------
@pytest.mark.parametrize("value, env, expected", [
    ("$(A)", {"A": "1"}, "1"),
    ("x-$(A)-$(B)", {"A": "1", "B": "2"}, "x-1-2"),
    ("$(MISSING)", {}, "$(MISSING)"),  # an undefined reference stays as written
    ("$$(A)", {"A": "1"}, "$(A)"),  # $$ escapes
    ("$A $(A", {"A": "1"}, "$A $(A"),  # not references
    ("--node-rank $(FLIGHTBASE_NODE_RANK)", {"FLIGHTBASE_NODE_RANK": "0"}, "--node-rank 0"),
])
def test_expand_follows_kubernetes_rules(value, env, expected):
    assert expand(value, env) == expected


@pytest.mark.parametrize("q, expected", [("1Gi", 2**30), ("512Mi", 512 * 2**20), ("1G", 10**9), ("100", 100)])
def test_quantities(q, expected):
    assert quantity_bytes(q) == expected


def test_pod_templates_of_the_workload_kinds():
    template = {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    for kind in ("Job", "Deployment", "StatefulSet"):
        assert pod_template_of({"kind": kind, "spec": {"template": template}})["spec"] == template["spec"]
    mpijob = {"kind": "MPIJob", "metadata": {"name": "m"},
              "spec": {"mpiReplicaSpecs": {"Launcher": {"template": template}, "Worker": {"template": template}}}}
    assert pod_template_of(mpijob, "Worker")["metadata"] == {"labels": {"a": "b"}}
    with pytest.raises(PodError, match="replica must be one of"):
        pod_template_of(mpijob)
    sts = {"kind": "StatefulSet", "spec": {"template": template, "volumeClaimTemplates": [{"metadata": {"name": "data"}}]}}
    assert pod_template_of(sts)["spec"]["_volumeClaimTemplates"] == ["data"]
    with pytest.raises(PodError, match="no pod template in a Service"):
        pod_template_of({"kind": "Service"})


# -- containers ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def base_image():
    return image_or_skip(BASE)


def pod(name: str, script: str, **spec) -> dict:
    container = {"name": "main", "image": "debian", "command": ["bash", "-c"], "args": [script]}
    container.update(spec.pop("container", {}))
    return {"kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"restartPolicy": "Never", "containers": [container], **spec}}


def run_to_end(runner: PodRunner, manifest: dict, **kw) -> str:
    running = runner.run_pod(manifest, **kw)
    code = runner.wait(running, timeout=60)
    out = runner.logs(running)
    assert code == 0, out
    return out


def test_environment_command_and_working_dir(base_image):
    manifest = pod("env", "", container={
        "args": ['echo "args=$0 $1"; echo "pwd=$PWD"; env | grep -E "^(PLAIN|COMBINED|TOKEN|MODE|POD|NS|INDEX|FROM_)" | sort',
                 "$(PLAIN)"],
        "workingDir": "/tmp",
        "env": [
            {"name": "PLAIN", "value": "plain"},
            {"name": "COMBINED", "value": "$(PLAIN)-and-$(UNDEFINED)"},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
            {"name": "ABSENT", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "nope", "optional": True}}},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "INDEX", "valueFrom": {"fieldRef": {
                "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}},
        ],
        "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "FROM_"}],
    })
    with PodRunner(namespace="flightbase", images={"debian": base_image}) as runner:
        runner.add_objects([{"kind": "Secret", "metadata": {"name": "creds"}, "data": {"token": "czNjcjN0"}},
                            {"kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"mode": "fast"}}])
        out = run_to_end(runner, manifest, annotations={"batch.kubernetes.io/job-completion-index": "1"})
    assert out.splitlines() == [
        "args=plain ",  # bash -c SCRIPT ARG: $0 is ARG, expanded from $(PLAIN)
        "pwd=/tmp",
        "COMBINED=plain-and-$(UNDEFINED)",
        "FROM_mode=fast",
        "INDEX=1",
        "MODE=fast",
        "NS=flightbase",
        "PLAIN=plain",
        "POD=env",
        "TOKEN=s3cr3t",
    ]


def test_security_context_and_volumes(base_image, tmp_path):
    claim = tmp_path / "claim"
    (claim / "ws-a").mkdir(parents=True)
    (claim / "ws-a" / "hello.txt").write_text("from the claim\n")
    script = "; ".join([
        "id -u; id -g; id -G",
        "grep CapEff /proc/self/status",
        "grep NoNewPrivs /proc/self/status",
        "stat -c '%u:%g %a %n' /etc/keys/id_rsa /etc/keys/pub/key.pub",
        "cat /etc/keys/id_rsa /etc/keys/pub/key.pub /etc/conf/app.conf /workspace/hello.txt",
        "ls /etc/conf",
        "touch /scratch/x && stat -c '%g %n' /scratch/x",
        "echo written > /workspace/out.txt",
        "(echo no > /etc/conf/new) 2>/dev/null || echo config read-only",
        "df -k /dev/shm | tail -1 | awk '{print $2}'",
    ])
    manifest = pod("secure", script, securityContext={"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000,
                                                      "fsGroup": 2000},
                   volumes=[
                       {"name": "keys", "secret": {"secretName": "ssh", "defaultMode": 0o600,
                                                   "items": [{"key": "private", "path": "id_rsa"},
                                                             {"key": "public", "path": "pub/key.pub", "mode": 0o644}]}},
                       {"name": "conf", "configMap": {"name": "app", "items": [{"key": "conf", "path": "app.conf"}]}},
                       {"name": "scratch", "emptyDir": {}},
                       {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
                       {"name": "ws", "persistentVolumeClaim": {"claimName": "workspaces"}},
                   ],
                   container={"securityContext": {"allowPrivilegeEscalation": False,
                                                  "capabilities": {"drop": ["ALL"]}},
                              "volumeMounts": [{"name": "keys", "mountPath": "/etc/keys"},
                                               {"name": "conf", "mountPath": "/etc/conf"},
                                               {"name": "scratch", "mountPath": "/scratch"},
                                               {"name": "shm", "mountPath": "/dev/shm"},
                                               {"name": "ws", "mountPath": "/workspace", "subPath": "ws-a"}]})
    os.chmod(claim / "ws-a", 0o777)
    with PodRunner(images={"debian": base_image}, host_dirs={"workspaces": claim},
                   secrets={"ssh": {"private": "PRIVATE\n", "public": "PUBLIC\n"}},
                   configmaps={"app": {"conf": "key=value\n", "unused": "x"}}) as runner:
        out = run_to_end(runner, manifest)
    lines = out.splitlines()
    assert lines[:3] == ["1000", "1000", "1000 2000"], out
    assert lines[3].split() == ["CapEff:", "0000000000000000"], out
    assert lines[4].split() == ["NoNewPrivs:", "1"], out
    # the kubelet's volume ownership for fsGroup: root:<fsGroup>, group-readable (0600 -> 0640)
    assert lines[5] == "0:2000 640 /etc/keys/id_rsa", out
    assert lines[6] == "0:2000 644 /etc/keys/pub/key.pub", out
    assert lines[7:11] == ["PRIVATE", "PUBLIC", "key=value", "from the claim"], out
    assert lines[11] == "app.conf", out  # items: only the keys named
    assert lines[12] == "2000 /scratch/x", out  # emptyDir: setgid to fsGroup
    assert lines[13] == "config read-only", out
    assert lines[14] == str(64 * 1024), out  # the Memory emptyDir's sizeLimit, in KiB
    assert (claim / "ws-a" / "out.txt").read_text() == "written\n"


def test_names_on_the_network_and_cleanup(base_image):
    service = {"kind": "Service", "metadata": {"name": "rendezvous", "namespace": "flightbase"},
               "spec": {"clusterIP": "None", "selector": {"app": "server"}}}
    server = pod("server-0", "hostname; sleep 60", hostname="job-0", subdomain="job")
    server["metadata"]["labels"] = {"app": "server"}
    client = pod("client", "; ".join(f"getent hosts {n} | awk '{{print $1}}'" for n in (
        "job-0.job", "job-0.job.flightbase.svc.cluster.local", "rendezvous", "rendezvous.flightbase.svc", "extra")))
    with PodRunner(namespace="flightbase", images={"debian": base_image}) as runner:
        runner.add_objects([service])
        started = runner.run_pod(server, aliases=["extra"])
        runner.wait_ready(started)
        ip = runner.ip(started)
        assert runner.exit_code(started) is None
        out = run_to_end(runner, client)
        assert out.split() == [ip] * 5
        assert runner.logs(started).strip() == "job-0"
        session, network, tmp = runner.session, runner.network, runner._tmp
        assert docker("ps", "-aq", "--filter", f"label=flightbase.test/podrun={session}").stdout.split()
    assert docker("ps", "-aq", "--filter", f"label=flightbase.test/podrun={session}").stdout.split() == []
    assert docker("network", "inspect", network, check=False).returncode != 0
    assert not Path(tmp).exists()


def test_init_containers_run_first_and_a_failing_one_fails_the_pod(base_image, tmp_path):
    claim = tmp_path / "data"
    claim.mkdir()
    manifest = pod("init", "cat /data/ready", volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "d"}}],
                   initContainers=[{"name": "prepare", "image": "debian", "command": ["bash", "-c", "echo ok > /data/ready"],
                                    "volumeMounts": [{"name": "d", "mountPath": "/data"}]}],
                   container={"volumeMounts": [{"name": "d", "mountPath": "/data"}]})
    with PodRunner(images={"debian": base_image}, host_dirs={"d": claim}) as runner:
        assert run_to_end(runner, manifest) == "ok\n"
        failing = pod("init-fails", "true", initContainers=[{"name": "boom", "image": "debian",
                                                               "command": ["bash", "-c", "echo broken; exit 3"]}])
        with pytest.raises(PodFailed, match="init container boom exited 3:\nbroken"):
            runner.run_pod(failing)


def test_what_the_kubelet_refuses_is_refused(base_image):
    with PodRunner(images={"debian": base_image}) as runner:
        with pytest.raises(PodError, match="runAsNonRoot and the image's user 'root'"):
            runner.run_pod(pod("rooted", "true", securityContext={"runAsNonRoot": True}))
        with pytest.raises(PodError, match="secret 'missing' not found"):
            runner.run_pod(pod("nosecret", "true", container={"env": [
                {"name": "X", "valueFrom": {"secretKeyRef": {"name": "missing", "key": "k"}}}]}))
        with pytest.raises(PodError, match="image 'ghcr.io/nowhere/none:1'"):
            runner.run_pod(pod("noimage", "true", container={"image": "ghcr.io/nowhere/none:1"}))
        with pytest.raises(PodError, match="hostPath '/etc' has no host folder"):
            runner.run_pod(pod("host", "true", volumes=[{"name": "h", "hostPath": {"path": "/etc"}}],
                               container={"volumeMounts": [{"name": "h", "mountPath": "/h"}]}))
        with pytest.raises(PodError, match="a pod template needs a name"):
            runner.run_pod({"spec": {"containers": []}})
