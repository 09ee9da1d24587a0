# JupyterHub configuration of the Kubernetes deployment (Helm chart, Zero to JupyterHub).
# A thin mapping: z2jh's jupyterhub_config.py has already applied the chart's values
# (proxy, database, services with their tokens); this file, copied into
# /usr/local/etc/jupyterhub/jupyterhub_config.d/ by images/hub/Dockerfile, adds
# Flightbase's scopes, roles and spawner. Settings come from the hub's environment
# (jupyterhub.hub.extraEnv in the chart's values).
import json
import os

from flightbase_server.hub import rbac
from flightbase_server.hub.config import configure_servers

# The hub's config: z2jh's jupyterhub_config.py exec()s this file in its own namespace, where `c`
# is its config and `get_config` is z2jh's get_config(key, default) (a chart value), so calling
# get_config() here fails; traitlets' loader, which runs a config file alone, defines `c` too.
c = globals()["c"]

# Added to what z2jh's config has set: the idle culler's role (cull.enabled) and the chart's
# hub.loadRoles are in load_roles already, an operator's hub.config may hold custom scopes.
c.JupyterHub.custom_scopes = rbac.merge_custom_scopes(c.JupyterHub.get("custom_scopes"), rbac.custom_scopes())
c.JupyterHub.load_roles = rbac.merge_roles(c.JupyterHub.get("load_roles"), rbac.roles())
c.JupyterHub.default_url = "/hub/home"
c.JupyterHub.allow_named_servers = True

c.JupyterHub.spawner_class = "flightbase_spawner.kube.FlightbaseKubeSpawner"
c.FlightbaseKubeSpawner.workspaces_pvc = os.environ.get("FLIGHTBASE_K8S_WORKSPACES_PVC", "flightbase-workspaces")
c.FlightbaseKubeSpawner.datasets_pvc = os.environ.get("FLIGHTBASE_K8S_DATASETS_PVC", "flightbase-datasets")
c.FlightbaseKubeSpawner.gpu_resource = os.environ.get("FLIGHTBASE_K8S_GPU_RESOURCE", "nvidia.com/gpu")
c.FlightbaseKubeSpawner.gpu_types = json.loads(os.environ.get("FLIGHTBASE_K8S_GPU_TYPES", "{}"))
c.FlightbaseKubeSpawner.workspace_gpu_types = json.loads(os.environ.get("FLIGHTBASE_K8S_WORKSPACE_GPU_TYPES", "{}"))
c.FlightbaseKubeSpawner.image_pull_secret = os.environ.get("FLIGHTBASE_K8S_IMAGE_PULL_SECRET", "")
c.FlightbaseKubeSpawner.jobqueue_url = os.environ.get("FLIGHTBASE_JOBQUEUE_URL", "http://flightbase-jobqueue:8082")
c.FlightbaseKubeSpawner.registry_url = os.environ.get("FLIGHTBASE_REGISTRY_URL", "http://flightbase-registry:8083")
c.FlightbaseKubeSpawner.public_url = os.environ.get("FLIGHTBASE_PUBLIC_URL", "http://proxy-public")
if os.environ.get("FLIGHTBASE_K8S_NAMESPACE"):
    c.FlightbaseKubeSpawner.namespace = os.environ["FLIGHTBASE_K8S_NAMESPACE"]
configure_servers(c)
