"""Run the registry service (JupyterHub starts it as a managed service)."""

from flightbase_server.service.run import serve
from flightbase_registry.app import build

serve("registry", build)
