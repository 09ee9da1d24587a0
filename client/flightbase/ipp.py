"""An ipyparallel engine launcher that starts a cluster's engines as one Flightbase job.

    import ipyparallel as ipp
    cluster = ipp.Cluster(engine_launcher_class="flightbase", n=4)
    rc = cluster.start_and_connect_sync(activate=True)   # then %%px cells run on 4 GPUs

The ``n`` engines are one training of ``n`` GPUs (one GPU, or CPU slot, each),
queued and counted by the scheduler like any other. They are started by the
Horovod launcher (``horovodrun --gloo -np n``), so every engine has the Horovod
environment and ``hvd.init()`` works in a ``%%px`` cell. Stopping the engines
(or the cluster) cancels the job; a job that ends on its own (cancelled from
the CLI, preempted, over its maximum runtime) stops the engine set.

Registered as ``flightbase`` in the ``ipyparallel.engine_launchers`` entry-point
group. It follows ipyparallel's batch launchers (Slurm, PBS: submit, then
delete the job to stop), written against the jobqueue API instead of a submit
command. The engines get the controller's connection info (ports and key) in a
file of the job's code, which only the job's owner can read, rather than in the
training's environment, which members of the workspace can see.

The controller listens on 127.0.0.1 by default: enough when the jobs run on the
machine of the notebook (the local backend). Across machines, make it listen
where the job's nodes can reach it: ``ipp.Cluster(..., controller_ip="*",
controller_location="<the notebook's address>")`` (docs/notebooks.md).
"""

from __future__ import annotations

import asyncio
import signal
import threading

from ipyparallel.cluster.launcher import EngineLauncher, NotRunning
from traitlets import Dict, Float, Integer, List, Unicode, default

from flightbase.client import ENDED

ENTRY = "flightbase_ipengine.py"
CONNECTION = "ipp-engine-connection.json"

# The job's entry point: one ipengine per process the launcher starts.
ENTRY_SCRIPT = f'''"""An ipyparallel engine, started by Flightbase for a notebook's cluster."""
import os
import sys

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), {CONNECTION!r})) as f:
    os.environ["IPP_CONNECTION_INFO"] = f.read()
from ipyparallel.engine.app import main

sys.exit(main(sys.argv[1:]))
'''


class FlightbaseEngineSetLauncher(EngineLauncher):
    """Start ``n`` ipyparallel engines as one Flightbase job, one GPU each."""

    entrypoint_name = "flightbase"

    workspace = Unicode("", config=True, help="workspace of the job (default: $FLIGHTBASE_WORKSPACE, else your only one)")
    launcher = Unicode("horovod", config=True, help="how the engines are started: horovod (default), mpi or none")
    gpus_per_node = Integer(0, config=True, help="ask for nodes of this many GPUs each (0: any placement)")
    image = Unicode("", config=True, help="image of the job (default: the platform's)")
    datasets = List(Unicode(), config=True, help="datasets mounted read-only in the job")
    job_env = Dict(config=True, help="extra environment variables of the engines")
    max_runtime = Float(0, config=True, help="seconds; 0: the workspace's default")
    job_name = Unicode("ipyparallel", config=True, help="name of the training")
    url = Unicode("", config=True, help="hub URL (default: the client's: $FLIGHTBASE_URL or $JUPYTERHUB_API_URL)")
    token = Unicode("", config=True, help="API token (default: $FLIGHTBASE_TOKEN or $JUPYTERHUB_API_TOKEN)")
    poll_interval = Float(2.0, config=True, help="seconds between two looks at the job's state")

    job_id = Unicode("").tag(to_dict=True)
    training_id = Unicode("").tag(to_dict=True)
    job_state = Unicode("").tag(to_dict=True)

    _watcher: threading.Thread | None = None
    _stop_watching: threading.Event | None = None

    @default("identifier")
    def _default_identifier(self):
        return f"flightbase-{self.cluster_id or 'cluster'}-{self.engine_set_id or 'engines'}"

    def find_args(self):  # what ipyparallel logs as the "process" it started
        return ["flightbase-job", self.job_id or "(not submitted)"]

    def _client(self):
        from flightbase.client import Client

        return Client(self.url or None, self.token or None)

    # -- ipyparallel's launcher interface ------------------------------------------------
    async def start(self, n):
        self.n = n
        self.loop  # resolve the IOLoop here, on the cluster's thread, as ipyparallel's launchers do
        await asyncio.to_thread(self._submit, n)
        self.notify_start({"job_id": self.job_id, "training_id": self.training_id})
        self._start_watching()
        return self.job_id

    def _submit(self, n: int) -> str:
        env = self.get_env()
        connection = env.pop("IPP_CONNECTION_INFO", None)
        if connection is None:  # the Cluster passes it unless send_engines_connection_env is off
            with open(self.connection_files["engine"]) as f:
                connection = f.read()
        job_env = {k: v for k, v in env.items() if k not in ("IPP_PROFILE_DIR", "IPP_CLUSTER_ID")}
        job_env.update(self.job_env)
        spec = {
            "gpus": n,
            "launcher": self.launcher,
            "gpus_per_node": self.gpus_per_node or None,
            "image": self.image or None,
            "datasets": list(self.datasets),
            "env": job_env,
            "max_runtime": self.max_runtime or None,
            "args": list(self.engine_args),
        }
        with self._client() as c:
            workspace = c.resolve_workspace(self.workspace or None)
            code = c.upload_files(workspace, {ENTRY: ENTRY_SCRIPT.encode(), CONNECTION: connection.encode()})
            training = c.submit(workspace, None, entrypoint=ENTRY, name=self.job_name, code_id=code["id"], **spec)
            job = training["jobs"][0]
            job = c.job(job["id"])
        self.training_id, self.job_id, self.job_state = training["id"], job["id"], job["state"]
        queued = job.get("queue") or {}
        self.log.info("Flightbase job %s (%d engines) in %s: %s%s", self.job_id, n, workspace, job["state"],
                      f", position {queued['position']}: {queued['reason']}" if queued else "")
        return self.job_id

    async def stop(self):
        if not self.job_id or self.state == "after":
            return self.stop_data
        job = await asyncio.to_thread(self._cancel_and_wait)
        return self._stopped(job)

    def _cancel_and_wait(self) -> dict:
        from flightbase.client import ApiError

        with self._client() as c:
            try:
                c.cancel(self.job_id)
            except ApiError as exc:  # it may have ended meanwhile
                if exc.status not in (404, 409, 422):
                    raise
            return c.wait(self.job_id, timeout=self.stop_timeout, interval=0.5)

    def signal(self, sig):
        """SIGTERM / SIGKILL / SIGINT cancel the job (the jobqueue stops every process of it).

        To interrupt a running ``%%px`` cell, use the client (``rc.send_signal``): it
        goes through the controller to the engines themselves.
        """
        if sig in (signal.SIGTERM, signal.SIGKILL, signal.SIGINT, "TERM", "KILL", "INT"):
            self._cancel_and_wait()
        else:
            raise NotImplementedError(f"a Flightbase job takes no signal {sig} (only a cancel)")

    def poll(self):
        """None while the job is queued or running, else its exit code (-1 when it has none)."""
        if self.state != "after":
            return None
        return (self.stop_data or {}).get("exit_code", -1)

    def get_output(self, remove=False):
        """The engines' output, from the job's log."""
        if not self.job_id:
            return ""
        try:
            with self._client() as c:
                return c.logs(self.job_id)
        except Exception as exc:  # output is for the log only: never fail a stop over it
            return f"(no output: {exc})"

    @classmethod
    def from_dict(cls, d, **kwargs):
        self = super().from_dict(d, **kwargs)
        if not self.job_id:
            raise NotRunning("no Flightbase job")
        with self._client() as c:
            job = c.job(self.job_id)
        if job["state"] in ENDED:
            raise NotRunning(f"Flightbase job {self.job_id} is {job['state']}")
        self.state = "running"
        self.loop
        self._start_watching()
        return self

    # -- watching the job ----------------------------------------------------------------
    def _stopped(self, job: dict) -> dict:
        if self._stop_watching is not None:
            self._stop_watching.set()
        self.job_state = job["state"]
        data = {"job_id": self.job_id, "state": job["state"], "exit_code": job.get("exit_code"),
                "reason": job.get("reason")}
        return self.notify_stop(data)

    def _start_watching(self) -> None:
        self._stop_watching = threading.Event()
        self._watcher = threading.Thread(target=self._watch, daemon=True, name=f"flightbase-job-{self.job_id}")
        self._watcher.start()

    def _watch(self) -> None:
        """Notice a job that ends by itself, and stop the engine set then."""
        from flightbase.client import ApiError

        while not self._stop_watching.wait(self.poll_interval):
            try:
                with self._client() as c:
                    job = c.job(self.job_id)
            except ApiError as exc:
                if exc.status == 404:  # deleted
                    job = {"state": "cancelled", "exit_code": None, "reason": "the job is gone"}
                else:
                    continue  # the service restarting: look again later
            self.job_state = job["state"]
            if job["state"] in ENDED:
                self.loop.add_callback(self._stopped, job)
                return
