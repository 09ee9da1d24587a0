"""Run the jobqueue service (JupyterHub starts it as a managed service)."""

from flightbase_server.service.run import serve
from flightbase_jobqueue.app import build

serve("jobqueue", build)
