"""A test stand-in for the kubelet: run rendered pod specs as Docker containers.

No Kubernetes cluster can run here (no API server, no kubelet, no container
runtime interface), but a Docker engine can.  :class:`PodRunner` takes a
rendered Pod (or the pod template of a Job, MPIJob, Deployment or StatefulSet:
:func:`pod_template_of`) and starts each container of it with ``docker run -d``
on one Docker network, doing what the kubelet would do with the spec:

- **Names.** The container's hostname is ``spec.hostname`` (default: the pod's
  name); with ``spec.subdomain`` the network also answers
  ``<hostname>.<subdomain>`` (and ``.<namespace>``, ``.<namespace>.svc``,
  ``.<namespace>.svc.cluster.local``), as a headless Service's DNS does.  The
  names of registered Services whose selector matches the pod's labels, and any
  ``aliases`` given, become network aliases too (Service discovery by DNS).
- **Environment.** ``env`` values with ``$(VAR)`` expansion (Kubernetes'
  rules: earlier variables only, ``$$`` escapes, unknown references stay as
  written), ``valueFrom`` ``secretKeyRef`` / ``configMapKeyRef`` (``optional``
  honoured) and ``fieldRef`` (``metadata.name``, ``metadata.namespace``,
  ``metadata.uid``, ``metadata.labels['k']``, ``metadata.annotations['k']``,
  ``spec.nodeName``, ``spec.serviceAccountName``), and ``envFrom``.  Under
  them, as the kubelet's: the Service links of the registered Services
  (``<NAME>_SERVICE_HOST``/``_PORT``..., the host being the Service's name;
  unless ``enableServiceLinks: false``), and with ``api_server`` the API's
  ``KUBERNETES_SERVICE_HOST``/``PORT``; ``$(VAR)`` may refer to both.
- **Service account.** With ``api_server`` (``{"host", "port", "token", "ca"}``),
  a pod that does not set ``automountServiceAccountToken: false`` gets the
  token, the CA certificate and its namespace at
  ``/var/run/secrets/kubernetes.io/serviceaccount`` (what ``load_incluster_config``
  reads).
- **Process.** ``command`` replaces the image's entrypoint and ``args`` its
  command, with ``$(VAR)`` expanded from the container's environment;
  ``workingDir``.
- **Security context.** ``runAsUser``/``runAsGroup`` (pod, then container) as
  ``--user``, ``fsGroup`` and ``supplementalGroups`` as ``--group-add``,
  ``runAsNonRoot`` checked against the image's user (refused, as the kubelet
  refuses it), ``capabilities`` as ``--cap-drop``/``--cap-add``,
  ``allowPrivilegeEscalation: false`` as ``no-new-privileges``,
  ``readOnlyRootFilesystem`` as ``--read-only``.
- **Volumes.** ``configMap`` and ``secret`` (and those two as ``projected``
  sources): files written to a temporary folder (``items``, ``defaultMode``,
  ``mode``) and bind-mounted read-only; with an ``fsGroup`` they are owned by
  ``root:<fsGroup>`` and group-readable, as the kubelet's volume ownership
  makes them.  ``emptyDir``: a temporary folder (``medium: Memory``: a tmpfs of
  ``sizeLimit``).  ``hostPath`` and ``persistentVolumeClaim`` (and a
  StatefulSet's ``volumeClaimTemplates``): folders of the caller's
  ``host_dirs`` map (by ``hostPath.path``, by claim name, or for a claim
  template by ``<template>-<pod>`` then ``<template>``); ``subPath`` is
  created inside as the kubelet creates it.  Nothing on the host is mounted
  that the caller did not name.
- **Images.** ``images`` maps a rendered image name to a local image; an
  image that is not in the engine is an error naming it (nothing is pulled).
- **Limits.** ``resources.limits.memory`` and ``cpu`` as ``--memory`` and
  ``--cpus`` (``enforce_limits``); extended resources (GPUs) are ignored.
- ``initContainers`` run one after the other to completion first; a failing
  one fails the pod start (:class:`PodFailed`).

What it does not do: restart containers (every pod behaves as
``restartPolicy: Never``), run probes on its own (:meth:`PodRunner.wait_ready`
runs a container's readiness probe on request), translate a Service's
``port`` to its ``targetPort`` (clients on the network reach the pod's own
port), mount service account tokens (unless ``api_server`` is given), or schedule (every pod is on this one
machine; pods are isolated by their network namespaces, each with its own
address on the network).

Everything it starts carries the label ``flightbase.test/podrun=<session>``;
``with PodRunner(...) as runner:`` removes those containers, a network it
created, and its temporary folders on exit, whatever happened.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from tests.helpers import containers

LABEL = "flightbase.test/podrun"
POD_LABEL = "flightbase.test/pod"
CONTAINER_LABEL = "flightbase.test/container"
CLUSTER_DOMAIN = "cluster.local"


class PodError(RuntimeError):
    """A pod spec this stand-in cannot run as written (what the kubelet would refuse)."""


class PodFailed(RuntimeError):
    """An init container of the pod exited non-zero."""


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    """``docker ARGS``; with ``check``, a failure raises :class:`RuntimeError` with its output: the
    stand-in's own error, as a kubelet's would be, rather than a test's AssertionError."""
    return containers.docker(*args, timeout=timeout, check=check, failure=RuntimeError)


# -- pod templates ---------------------------------------------------------------------------
def pod_template_of(obj: Mapping, replica: str | None = None) -> dict:
    """The pod (``{"metadata", "spec"}``) of a Pod, or the template of a Job, Deployment,
    StatefulSet, ReplicaSet, DaemonSet or MPIJob (``replica``: ``Launcher`` or ``Worker``).
    A StatefulSet's ``volumeClaimTemplates`` are kept under ``spec`` of the result as
    ``_volumeClaimTemplates`` so that :meth:`PodRunner.run_pod` can resolve them."""
    kind = obj.get("kind")
    if kind == "Pod":
        return {"metadata": dict(obj.get("metadata") or {}), "spec": obj["spec"]}
    if kind == "MPIJob":
        specs = obj["spec"]["mpiReplicaSpecs"]
        if replica not in specs:
            raise PodError(f"MPIJob {obj['metadata']['name']}: replica must be one of {sorted(specs)}, not {replica!r}")
        template = specs[replica]["template"]
    elif kind in ("Job", "Deployment", "StatefulSet", "ReplicaSet", "DaemonSet"):
        template = obj["spec"]["template"]
    else:
        raise PodError(f"no pod template in a {kind}")
    pod = {"metadata": json.loads(json.dumps(template.get("metadata") or {})),
           "spec": json.loads(json.dumps(template["spec"]))}
    if kind == "StatefulSet" and obj["spec"].get("volumeClaimTemplates"):
        pod["spec"]["_volumeClaimTemplates"] = [t["metadata"]["name"] for t in obj["spec"]["volumeClaimTemplates"]]
    return pod


# -- $(VAR) expansion ------------------------------------------------------------------------
_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: defined names are replaced, ``$$`` is ``$``, and a
    reference to an undefined name stays as written."""
    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)
    return _REF.sub(sub, value)


# -- quantities ------------------------------------------------------------------------------
_SUFFIX = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
           "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity_bytes(q: str | int) -> int:
    """``"512Mi"`` -> 536870912."""
    m = re.fullmatch(r"([0-9.]+)([kMGT]i?|Ki)?", str(q).strip())
    if not m:
        raise PodError(f"not a memory quantity: {q!r}")
    return int(float(m.group(1)) * _SUFFIX[m.group(2) or ""])


def quantity_cpus(q: str | int | float) -> float:
    """``"500m"`` -> 0.5."""
    s = str(q).strip()
    return int(s[:-1]) / 1000 if s.endswith("m") else float(s)


# -- the runner --------------------------------------------------------------------------------
@dataclass
class RunningPod:
    """A started pod: its name, hostname, and its containers' Docker names by container name."""

    name: str
    hostname: str
    containers: dict[str, str]
    aliases: list[str] = field(default_factory=list)
    specs: dict[str, dict] = field(default_factory=dict)  # container name -> its (rendered) spec

    @property
    def main(self) -> str:
        """The Docker name of the pod's first container."""
        return next(iter(self.containers.values()))


def _field_path(path: str, pod: Mapping, namespace: str, node_name: str) -> str:
    meta = pod.get("metadata") or {}
    m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if m:
        values = meta.get(m.group(1)) or {}
        if m.group(2) not in values:
            raise PodError(f"pod {meta.get('name')}: fieldRef {path}: no such {m.group(1)[:-1]}")
        return str(values[m.group(2)])
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace") or namespace,
        "metadata.uid": meta.get("uid") or str(uuid.uuid5(uuid.NAMESPACE_DNS, str(meta.get("name")))),
        "spec.nodeName": node_name,
        "spec.serviceAccountName": (pod.get("spec") or {}).get("serviceAccountName", "default"),
    }
    if path not in simple or simple[path] is None:
        raise PodError(f"pod {meta.get('name')}: fieldRef {path} is not supported by this stand-in")
    return str(simple[path])


class PodRunner:
    """Runs pods as containers on one Docker network (see the module's docstring).

    ``network``: the Docker network's name; created (labelled, and removed on
    exit) when it does not exist.  ``namespace``: the pods' namespace.
    ``secrets`` / ``configmaps``: ``{name: {key: str | bytes}}``; rendered
    Secret and ConfigMap objects can be added with :meth:`add_objects` too.
    ``host_dirs``: ``{claim name or hostPath path: host folder}``.
    ``images``: ``{rendered image: local image}``.
    """

    def __init__(self, network: str | None = None, *, namespace: str = "default",
                 secrets: Mapping[str, Mapping[str, str | bytes]] | None = None,
                 configmaps: Mapping[str, Mapping[str, str | bytes]] | None = None,
                 host_dirs: Mapping[str, str | os.PathLike] | None = None,
                 images: Mapping[str, str] | None = None,
                 node_name: str = "podrun", enforce_limits: bool = True,
                 api_server: Mapping | None = None):
        self.session = uuid.uuid4().hex[:10]
        self.network = network or f"podrun-{self.session}"
        self.namespace = namespace
        self.secrets: dict[str, dict[str, bytes]] = {}
        self.configmaps: dict[str, dict[str, bytes]] = {}
        for name, data in (secrets or {}).items():
            self.secrets[name] = {k: v.encode() if isinstance(v, str) else v for k, v in data.items()}
        for name, data in (configmaps or {}).items():
            self.configmaps[name] = {k: v.encode() if isinstance(v, str) else v for k, v in data.items()}
        self.services: list[dict] = []
        self.host_dirs = {k: Path(v) for k, v in (host_dirs or {}).items()}
        self.images = dict(images or {})
        self.node_name = node_name
        self.enforce_limits = enforce_limits
        self.api_server = dict(api_server) if api_server else None
        self.pods: dict[str, RunningPod] = {}
        self._own_network = False
        self._tmp: Path | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> "PodRunner":
        self._tmp = Path(tempfile.mkdtemp(prefix=f"podrun-{self.session}-"))
        self._tmp.chmod(0o755)  # containers' users traverse it to their volumes
        try:
            if docker("network", "inspect", self.network, check=False).returncode != 0:
                docker("network", "create", "--label", f"{LABEL}={self.session}", self.network)
                self._own_network = True
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        """Remove every container of this session, the network if it was created here, and
        the temporary folders."""
        ids = docker("ps", "-aq", "--filter", f"label={LABEL}={self.session}", check=False).stdout.split()
        if ids:
            docker("rm", "-f", "-v", *ids, check=False, timeout=180)
        if self._own_network:
            docker("network", "rm", self.network, check=False)
            self._own_network = False
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        self.pods.clear()

    # -- inputs ----------------------------------------------------------------------------
    def add_objects(self, objects: Iterable[Mapping]) -> None:
        """Register rendered Secrets (``data`` base64, ``stringData``), ConfigMaps (``data``,
        ``binaryData``) and Services (their names become aliases of the pods they select)."""
        for obj in objects:
            kind, name = obj.get("kind"), (obj.get("metadata") or {}).get("name")
            if kind == "Secret":
                data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
                data.update({k: str(v).encode() for k, v in (obj.get("stringData") or {}).items()})
                self.secrets[name] = data
            elif kind == "ConfigMap":
                data = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
                data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
                self.configmaps[name] = data
            elif kind == "Service":
                self.services.append(dict(obj))

    def service_aliases(self, labels: Mapping[str, str]) -> list[str]:
        """The DNS names of the registered Services that select a pod with these labels."""
        names = []
        for svc in self.services:
            selector = (svc.get("spec") or {}).get("selector") or {}
            if selector and all(labels.get(k) == v for k, v in selector.items()):
                name = svc["metadata"]["name"]
                ns = svc["metadata"].get("namespace") or self.namespace
                names += [name, f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.{CLUSTER_DOMAIN}"]
        return names

    def image(self, rendered: str) -> str:
        """The local image for a rendered image name (an error when the engine lacks it)."""
        local = self.images.get(rendered, rendered)
        if docker("image", "inspect", local, check=False).returncode != 0:
            raise PodError(f"image {rendered!r} (local {local!r}) is not in the Docker engine; "
                           "map it to a local image with images={...}")
        return local

    # -- env -------------------------------------------------------------------------------
    def _key(self, store: dict, kind: str, ref: Mapping, pod_name: str) -> str | None:
        data = store.get(ref["name"])
        if data is None or ref["key"] not in data:
            if ref.get("optional"):
                return None
            raise PodError(f"pod {pod_name}: {kind} {ref['name']!r} has no key {ref['key']!r}"
                           if data is not None else f"pod {pod_name}: {kind} {ref['name']!r} not found")
        return data[ref["key"]].decode()

    def container_env(self, pod: Mapping, container: Mapping) -> dict[str, str]:
        """The environment the kubelet would give this container."""
        name = (pod.get("metadata") or {}).get("name", "?")
        env: dict[str, str] = self.kubelet_env(pod)
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            if "configMapRef" in source or "secretRef" in source:
                kind, ref = ("configMap", source["configMapRef"]) if "configMapRef" in source else \
                    ("secret", source["secretRef"])
                store = self.configmaps if kind == "configMap" else self.secrets
                if ref["name"] not in store:
                    if ref.get("optional"):
                        continue
                    raise PodError(f"pod {name}: envFrom {kind} {ref['name']!r} not found")
                env.update({prefix + k: v.decode() for k, v in store[ref["name"]].items()})
        for var in container.get("env") or []:
            if "valueFrom" not in var:
                env[var["name"]] = expand(str(var.get("value", "")), env)
                continue
            source = var["valueFrom"]
            if "secretKeyRef" in source:
                value = self._key(self.secrets, "secret", source["secretKeyRef"], name)
            elif "configMapKeyRef" in source:
                value = self._key(self.configmaps, "configMap", source["configMapKeyRef"], name)
            elif "fieldRef" in source:
                value = _field_path(source["fieldRef"]["fieldPath"], pod, self.namespace, self.node_name)
            else:
                raise PodError(f"pod {name}: env {var['name']}: valueFrom {sorted(source)} is not supported")
            if value is not None:
                env[var["name"]] = value
        return env

    def kubelet_env(self, pod: Mapping) -> dict[str, str]:
        """What the kubelet adds under a container's own environment: the API server's address
        (with ``api_server``) and the registered Services' links (``enableServiceLinks``)."""
        env: dict[str, str] = {}
        if self.api_server:
            env.update(KUBERNETES_SERVICE_HOST=str(self.api_server["host"]),
                       KUBERNETES_SERVICE_PORT=str(self.api_server["port"]),
                       KUBERNETES_SERVICE_PORT_HTTPS=str(self.api_server["port"]))
        if (pod.get("spec") or {}).get("enableServiceLinks") is False:
            return env
        namespace = (pod.get("metadata") or {}).get("namespace") or self.namespace
        for svc in self.services:
            if (svc["metadata"].get("namespace") or self.namespace) != namespace or \
                    (svc.get("spec") or {}).get("clusterIP") == "None":
                continue
            host = svc["metadata"]["name"]
            prefix = host.upper().replace("-", "_")
            env[f"{prefix}_SERVICE_HOST"] = host
            for i, port in enumerate((svc.get("spec") or {}).get("ports") or []):
                number, proto = str(port["port"]), port.get("protocol", "TCP")
                if i == 0:
                    env[f"{prefix}_SERVICE_PORT"] = number
                    env[f"{prefix}_PORT"] = f"{proto.lower()}://{host}:{number}"
                if port.get("name"):
                    env[f"{prefix}_SERVICE_PORT_{port['name'].upper().replace('-', '_')}"] = number
                base = f"{prefix}_PORT_{number}_{proto}"
                env.update({base: f"{proto.lower()}://{host}:{number}", f"{base}_PROTO": proto.lower(),
                            f"{base}_PORT": number, f"{base}_ADDR": host})
        return env

    def _service_account_args(self, pod: Mapping, pod_dir: Path) -> list[str]:
        """The service account's token, CA and namespace, mounted where the kubelet mounts them."""
        if not self.api_server or (pod.get("spec") or {}).get("automountServiceAccountToken") is False:
            return []
        target = pod_dir / "serviceaccount"
        if not target.exists():
            target.mkdir()
            target.chmod(0o755)
            ca = self.api_server["ca"]
            for name, data in (("token", str(self.api_server["token"]).encode()),
                               ("ca.crt", ca if isinstance(ca, bytes) else str(ca).encode()),
                               ("namespace", ((pod.get("metadata") or {}).get("namespace") or self.namespace).encode())):
                (target / name).write_bytes(data)
                (target / name).chmod(0o644)
        return ["--mount", f"type=bind,source={target},destination=/var/run/secrets/kubernetes.io/serviceaccount,readonly"]

    # -- volumes ---------------------------------------------------------------------------
    def _write_files(self, target: Path, data: Mapping[str, bytes], items: list | None, mode: int,
                     fs_group: int | None, what: str, optional: bool) -> None:
        target.mkdir(parents=True, exist_ok=True)
        target.chmod(0o755)
        chosen = [(i["key"], i["path"], i.get("mode", mode)) for i in items] if items else \
            [(k, k, mode) for k in data]
        for key, path, file_mode in chosen:
            if key not in data:
                if optional:
                    continue
                raise PodError(f"{what} has no key {key!r}")
            file = target / path
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(data[key])
            if fs_group is not None:  # the kubelet's volume ownership: root:<fsGroup>, group-readable
                os.chown(file, 0, fs_group)
                file_mode |= 0o440
            file.chmod(file_mode)

    def _volume_source(self, pod_dir: Path, volume: Mapping, fs_group: int | None, pod: Mapping) -> tuple[str, Path | dict]:
        """``("bind", host path)`` or ``("tmpfs", {"size": bytes})`` for one volume."""
        vname = volume["name"]
        pod_name = pod["metadata"]["name"]
        if "configMap" in volume or "secret" in volume:
            kind = "configMap" if "configMap" in volume else "secret"
            src = volume[kind]
            ref = src.get("name") if kind == "configMap" else src.get("secretName")
            store = self.configmaps if kind == "configMap" else self.secrets
            optional = bool(src.get("optional"))
            if ref not in store and not optional:
                raise PodError(f"pod {pod_name}: volume {vname}: {kind} {ref!r} not found")
            target = pod_dir / "volumes" / vname
            self._write_files(target, store.get(ref, {}), src.get("items"), src.get("defaultMode", 0o644),
                              fs_group, f"{kind} {ref!r}", optional)
            return "bind", target
        if "projected" in volume:
            target = pod_dir / "volumes" / vname
            target.mkdir(parents=True, exist_ok=True)
            target.chmod(0o755)
            mode = volume["projected"].get("defaultMode", 0o644)
            for source in volume["projected"].get("sources") or []:
                if "configMap" in source or "secret" in source:
                    kind = "configMap" if "configMap" in source else "secret"
                    src = source[kind]
                    store = self.configmaps if kind == "configMap" else self.secrets
                    if src["name"] not in store and not src.get("optional"):
                        raise PodError(f"pod {pod_name}: volume {vname}: {kind} {src['name']!r} not found")
                    self._write_files(target, store.get(src["name"], {}), src.get("items"), mode, fs_group,
                                      f"{kind} {src['name']!r}", bool(src.get("optional")))
                else:
                    raise PodError(f"pod {pod_name}: volume {vname}: projected source {sorted(source)} "
                                   "is not supported by this stand-in")
            return "bind", target
        if "emptyDir" in volume:
            spec = volume["emptyDir"] or {}
            if spec.get("medium") == "Memory":
                return "tmpfs", {"size": quantity_bytes(spec["sizeLimit"]) if spec.get("sizeLimit") else None}
            target = pod_dir / "volumes" / vname
            target.mkdir(parents=True, exist_ok=True)
            target.chmod(0o777)
            if fs_group is not None:
                os.chown(target, 0, fs_group)
                target.chmod(0o2777)
            return "bind", target
        if "persistentVolumeClaim" in volume or "hostPath" in volume:
            # Both are host folders the caller named in host_dirs, by claim name or by path.
            kind, key = (("claim", volume["persistentVolumeClaim"]["claimName"]) if "persistentVolumeClaim" in volume
                         else ("hostPath", volume["hostPath"]["path"]))
            if key not in self.host_dirs:
                raise PodError(f"pod {pod_name}: volume {vname}: {kind} {key!r} has no host folder "
                               f"(host_dirs={{{key!r}: folder}}); nothing of the host is mounted unasked")
            return "bind", self.host_dirs[key]
        raise PodError(f"pod {pod_name}: volume {vname}: type {sorted(k for k in volume if k != 'name')} "
                       "is not supported by this stand-in")

    def _mount_args(self, pod: Mapping, container: Mapping, pod_dir: Path, fs_group: int | None,
                    sources: dict) -> list[str]:
        spec, pod_name = pod["spec"], pod["metadata"]["name"]
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        args: list[str] = []
        for mount in container.get("volumeMounts") or []:
            vname = mount["name"]
            if vname not in sources:
                if vname in volumes:
                    sources[vname] = self._volume_source(pod_dir, volumes[vname], fs_group, pod)
                elif vname in spec.get("_volumeClaimTemplates", []):
                    host = self.host_dirs.get(f"{vname}-{pod_name}") or self.host_dirs.get(vname)
                    if host is None:
                        raise PodError(f"pod {pod_name}: claim template {vname!r} has no host folder "
                                       f"(host_dirs={{'{vname}-{pod_name}' or '{vname}': folder}})")
                    sources[vname] = ("bind", host)
                else:
                    raise PodError(f"pod {pod_name}: volumeMount {vname!r} names no volume")
            kind, source = sources[vname]
            ro = bool(mount.get("readOnly"))
            if kind == "tmpfs":
                opt = f"type=tmpfs,destination={mount['mountPath']}"
                if source["size"]:
                    opt += f",tmpfs-size={source['size']}"
                args += ["--mount", opt + ",tmpfs-mode=1777"]
                continue
            host = Path(source)
            if "configMap" in volumes.get(vname, {}) or "secret" in volumes.get(vname, {}) or \
                    "projected" in volumes.get(vname, {}):
                ro = True  # the kubelet mounts these read-only, whatever the mount says
            if mount.get("subPath"):
                root, host = host, host / mount["subPath"]
                if not host.exists():
                    # the kubelet creates a missing subPath as a folder (as root), with the mode of the
                    # volume's root "to allow the group to write to it" (kubelet_pods.go, makeMounts);
                    # a set-group-ID root passes its group on
                    mode = root.stat().st_mode & 0o7777
                    for part in reversed([p for p in (host, *host.parents) if root in p.parents]):
                        if not part.exists():
                            part.mkdir()
                            part.chmod(mode)
            args += ["--mount", f"type=bind,source={host},destination={mount['mountPath']}" + (",readonly" if ro else "")]
        return args

    # -- security ----------------------------------------------------------------------------
    def _user_args(self, pod_sc: Mapping, sc: Mapping, image: str, where: str) -> list[str]:
        uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
        gid = sc.get("runAsGroup", pod_sc.get("runAsGroup"))
        args: list[str] = []
        if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")):
            if uid is None:
                user = docker("image", "inspect", "-f", "{{.Config.User}}", image).stdout.strip()
                user = user.split(":")[0]
                if not user.isdigit():
                    raise PodError(f"{where}: runAsNonRoot and the image's user {user or 'root'!r} is not numeric "
                                   "(the kubelet cannot verify it: CreateContainerConfigError)")
                uid = int(user)
            if int(uid) == 0:
                raise PodError(f"{where}: runAsNonRoot but the container would run as uid 0")
        if uid is not None:
            args += ["--user", f"{uid}:{gid}" if gid is not None else str(uid)]
        elif gid is not None:
            raise PodError(f"{where}: runAsGroup without runAsUser is not supported by this stand-in")
        groups = list(pod_sc.get("supplementalGroups") or [])
        if pod_sc.get("fsGroup") is not None:
            groups.append(pod_sc["fsGroup"])
        for g in groups:
            args += ["--group-add", str(g)]
        caps = sc.get("capabilities") or {}
        for cap in caps.get("drop") or []:
            args += ["--cap-drop", cap]
        for cap in caps.get("add") or []:
            args += ["--cap-add", cap]
        if sc.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        if sc.get("readOnlyRootFilesystem"):
            args.append("--read-only")
        if sc.get("privileged"):
            raise PodError(f"{where}: privileged containers are not run by this stand-in")
        return args

    # -- running ---------------------------------------------------------------------------------
    def run_pod(self, pod: Mapping, *, name: str | None = None, aliases: Iterable[str] = (),
                annotations: Mapping[str, str] | None = None, labels: Mapping[str, str] | None = None,
                hostname: str | None = None, subdomain: str | None = None,
                extra_args: Iterable[str] = (), init_timeout: float = 300) -> RunningPod:
        """Start a pod's containers (after its init containers ran to completion).

        ``pod``: a Pod, or ``{"metadata", "spec"}`` from :func:`pod_template_of`; ``name``
        (required for a template without one), ``annotations``, ``labels``, ``hostname``
        and ``subdomain`` are what a controller sets on the pods it makes (an indexed Job's
        completion index, the MPI Operator's worker hostnames)."""
        if self._tmp is None:
            raise RuntimeError("use the runner as a context manager: `with PodRunner(...) as runner:`")
        meta = json.loads(json.dumps(pod.get("metadata") or {}))
        spec = json.loads(json.dumps(pod["spec"]))
        meta["name"] = name or meta.get("name")
        if not meta["name"]:
            raise PodError("a pod template needs a name: run_pod(template, name=...)")
        if meta["name"] in self.pods:
            raise PodError(f"pod {meta['name']} is already running in this session")
        meta.setdefault("namespace", self.namespace)
        meta["labels"] = {**(meta.get("labels") or {}), **(labels or {})}
        meta["annotations"] = {**(meta.get("annotations") or {}), **(annotations or {})}
        if hostname:
            spec["hostname"] = hostname
        if subdomain:
            spec["subdomain"] = subdomain
        pod = {"metadata": meta, "spec": spec}
        pod_name = meta["name"]
        host = spec.get("hostname") or pod_name[:63]
        all_aliases = list(aliases) + self.service_aliases(meta["labels"])
        if spec.get("subdomain"):
            sub, ns = spec["subdomain"], meta["namespace"]
            all_aliases += [f"{host}.{sub}", f"{host}.{sub}.{ns}", f"{host}.{sub}.{ns}.svc",
                            f"{host}.{sub}.{ns}.svc.{CLUSTER_DOMAIN}"]
        all_aliases = list(dict.fromkeys(all_aliases))
        pod_dir = self._tmp / re.sub(r"[^A-Za-z0-9_.-]", "_", pod_name)
        pod_dir.mkdir()
        pod_dir.chmod(0o755)
        pod_sc = spec.get("securityContext") or {}
        fs_group = pod_sc.get("fsGroup")
        sources: dict = {}
        running = RunningPod(pod_name, host, {}, all_aliases)
        self.pods[pod_name] = running
        for init in spec.get("initContainers") or []:
            cname = self._start(pod, init, pod_dir, fs_group, sources, host, [], extra_args, init=True)
            code = self.wait_container(cname, init_timeout)
            if code != 0:
                raise PodFailed(f"pod {pod_name}: init container {init['name']} exited {code}:\n"
                                f"{self.container_logs(cname)[-3000:]}")
        for container in spec["containers"]:
            running.specs[container["name"]] = container
            running.containers[container["name"]] = self._start(pod, container, pod_dir, fs_group, sources, host,
                                                                all_aliases, extra_args)
        return running

    def _start(self, pod: Mapping, container: Mapping, pod_dir: Path, fs_group: int | None, sources: dict,
               host: str, aliases: list[str], extra_args: Iterable[str], init: bool = False) -> str:
        spec, pod_name = pod["spec"], pod["metadata"]["name"]
        where = f"pod {pod_name} container {container['name']}"
        image = self.image(container["image"])
        env = self.container_env(pod, container)
        cname = re.sub(r"[^A-Za-z0-9_.-]", "-", f"podrun-{self.session}-{pod_name}-{container['name']}")[:200]
        args = ["run", "-d", "--name", cname, "--hostname", host, "--network", self.network,
                "--label", f"{LABEL}={self.session}", "--label", f"{POD_LABEL}={pod_name}",
                "--label", f"{CONTAINER_LABEL}={container['name']}"]
        for alias in ([] if init else aliases):
            args += ["--network-alias", alias]
        for key, value in env.items():
            args += ["--env", f"{key}={value}"]
        if container.get("workingDir"):
            args += ["--workdir", container["workingDir"]]
        args += self._user_args(spec.get("securityContext") or {}, container.get("securityContext") or {}, image, where)
        args += self._mount_args(pod, container, pod_dir, fs_group, sources)
        args += self._service_account_args(pod, pod_dir)
        limits = (container.get("resources") or {}).get("limits") or {}
        if self.enforce_limits and limits.get("memory"):
            args += ["--memory", str(quantity_bytes(limits["memory"]))]
        if self.enforce_limits and limits.get("cpu"):
            args += ["--cpus", str(quantity_cpus(limits["cpu"]))]
        args += list(extra_args)
        command = [expand(str(c), env) for c in container.get("command") or []]
        cargs = [expand(str(a), env) for a in container.get("args") or []]
        if command:
            args += ["--entrypoint", command[0], image, *command[1:], *cargs]
        else:
            args += [image, *cargs]
        docker(*args)
        return cname

    # -- observing -------------------------------------------------------------------------------
    def _container(self, pod: RunningPod | str, container: str | None) -> str:
        running = pod if isinstance(pod, RunningPod) else self.pods[pod]
        return running.containers[container] if container else running.main

    @staticmethod
    def wait_container(cname: str, timeout: float) -> int:
        try:
            out = docker("wait", cname, timeout=timeout).stdout.strip()
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"container {cname} still runs after {timeout}s") from None
        return int(out)

    @staticmethod
    def container_logs(cname: str) -> str:
        r = docker("logs", cname, check=False, timeout=60)
        return r.stdout + r.stderr

    def wait(self, pod: RunningPod | str, timeout: float = 300, container: str | None = None) -> int:
        """Wait for a container (default: the pod's first) to exit; its exit code."""
        return self.wait_container(self._container(pod, container), timeout)

    def logs(self, pod: RunningPod | str, container: str | None = None) -> str:
        """A container's output so far (stdout, then stderr)."""
        return self.container_logs(self._container(pod, container))

    def exit_code(self, pod: RunningPod | str, container: str | None = None) -> int | None:
        """The container's exit code, or None while it runs."""
        state = json.loads(docker("inspect", "-f", "{{json .State}}", self._container(pod, container)).stdout)
        return None if state["Running"] or state["Status"] in ("created", "restarting") else int(state["ExitCode"])

    def ip(self, pod: RunningPod | str, container: str | None = None) -> str:
        """The pod's address on the network (the host reaches it: it is a bridge address)."""
        fmt = "{{(index .NetworkSettings.Networks \"%s\").IPAddress}}" % self.network
        return docker("inspect", "-f", fmt, self._container(pod, container)).stdout.strip()

    def remove(self, pod: RunningPod | str) -> None:
        """Remove the pod's containers (as a deleted pod's)."""
        running = pod if isinstance(pod, RunningPod) else self.pods[pod]
        ids = docker("ps", "-aq", "--filter", f"label={LABEL}={self.session}",
                     "--filter", f"label={POD_LABEL}={running.name}", check=False).stdout.split()
        if ids:
            docker("rm", "-f", "-v", *ids, check=False, timeout=180)
        self.pods.pop(running.name, None)

    def wait_ready(self, pod: RunningPod | str, container: str | None = None, timeout: float = 120) -> None:
        """Poll the container's ``readinessProbe`` (``httpGet``, ``tcpSocket`` or ``exec``; a
        container without one is ready once running) until it passes; TimeoutError with the
        logs when it does not, RuntimeError when the container exits first."""
        running = pod if isinstance(pod, RunningPod) else self.pods[pod]
        cname = self._container(running, container)
        cspec = running.specs[container] if container else next(iter(running.specs.values()))
        probe = json.loads(json.dumps(cspec.get("readinessProbe") or {}))
        named = {p["name"]: p["containerPort"] for p in cspec.get("ports") or [] if p.get("name")}
        for action in ("httpGet", "tcpSocket"):
            if action in probe and probe[action]["port"] in named:
                probe[action]["port"] = named[probe[action]["port"]]
        deadline = time.monotonic() + timeout
        ip = self.ip(pod, container)
        while True:
            if self.exit_code(pod, container) is not None:
                raise RuntimeError(f"{cname} exited {self.exit_code(pod, container)} before it was ready:\n"
                                   f"{self.container_logs(cname)[-3000:]}")
            if self._probe(cname, ip, probe):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{cname} not ready after {timeout}s:\n{self.container_logs(cname)[-3000:]}")
            time.sleep(0.5)

    @staticmethod
    def _probe(cname: str, ip: str, probe: Mapping | None) -> bool:
        if not probe:
            return True
        try:
            if "httpGet" in probe:
                get = probe["httpGet"]
                url = f"{get.get('scheme', 'HTTP').lower()}://{ip}:{get['port']}{get.get('path', '/')}"
                with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 (a test's own address)
                    return 200 <= r.status < 400
            if "tcpSocket" in probe:
                with socket.create_connection((ip, int(probe["tcpSocket"]["port"])), timeout=2):
                    return True
            if "exec" in probe:
                return docker("exec", cname, *probe["exec"]["command"], check=False, timeout=30).returncode == 0
        except (OSError, ValueError):
            return False
        raise PodError(f"{cname}: readinessProbe {sorted(probe)} is not supported by this stand-in")
