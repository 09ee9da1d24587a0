# JupyterHub configuration of the Kubernetes deployment (Helm chart, Zero to JupyterHub).
# A thin mapping: z2jh's jupyterhub_config.py has already applied the chart's values
# (proxy, database, services with their tokens); this file, copied into
# /usr/local/etc/jupyterhub/jupyterhub_config.d/ by images/hub/Dockerfile, adds
# Flightbase's scopes, roles and spawner. Settings come from the hub's environment
# (jupyterhub.hub.extraEnv in the chart's values).
import os

from flightbase.hub import rbac

c = get_config()  # noqa: F821 (provided by JupyterHub)

c.JupyterHub.custom_scopes = rbac.custom_scopes()
c.JupyterHub.load_roles = rbac.roles()
c.JupyterHub.default_url = "/hub/home"
c.JupyterHub.allow_named_servers = True

c.JupyterHub.spawner_class = "flightbase_spawner.kube.FlightbaseKubeSpawner"
c.FlightbaseKubeSpawner.workspaces_pvc = os.environ.get("FLIGHTBASE_K8S_WORKSPACES_PVC", "flightbase-workspaces")
c.FlightbaseKubeSpawner.datasets_pvc = os.environ.get("FLIGHTBASE_K8S_DATASETS_PVC", "flightbase-datasets")
c.FlightbaseKubeSpawner.gpu_resource = os.environ.get("FLIGHTBASE_K8S_GPU_RESOURCE", "nvidia.com/gpu")
if os.environ.get("FLIGHTBASE_K8S_NAMESPACE"):
    c.FlightbaseKubeSpawner.namespace = os.environ["FLIGHTBASE_K8S_NAMESPACE"]
