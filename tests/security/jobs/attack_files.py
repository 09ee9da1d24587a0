"""A hostile job: tries, as its owner's account, every way at platform state and other workspaces' files.

Prints one JSON line ``ATTACKS {name: outcome}`` where the outcome is ``succeeded`` or the
errno name that stopped it, and ``OWN <text>`` with its own dataset's file (the control:
what the job may read, it reads). The targets come in $ATTACK_TARGETS (JSON).
"""
import errno
import json
import os

targets = json.loads(os.environ["ATTACK_TARGETS"])
data = targets["data_dir"]
jdir = os.path.dirname(os.getcwd())  # the job's folder: cwd is its work/
results = {}


def attempt(name, action):
    try:
        action()
        results[name] = "succeeded"
    except OSError as exc:
        results[name] = errno.errorcode.get(exc.errno, str(exc.errno))


def read(path):
    with open(path, "rb") as f:
        f.read(1)


def swap_for_link(path, target):
    os.unlink(path)
    os.symlink(target, path)


def swap_for_fifo(path):
    os.unlink(path)
    os.mkfifo(path)


# the job's own folder: what the platform reads back must stay the platform's
attempt("swap output.log for a link to secrets.json", lambda: swap_for_link(f"{jdir}/output.log", f"{data}/secrets.json"))
attempt("plant a link beside output.log", lambda: os.symlink(f"{data}/secrets.json", f"{jdir}/output.log.1"))
attempt("hard-link secrets.json beside output.log", lambda: os.link(f"{data}/secrets.json", f"{jdir}/stolen"))
attempt("write exit_code", lambda: open(f"{jdir}/exit_code", "w").write("0"))
attempt("swap exit_code for a FIFO", lambda: swap_for_fifo(f"{jdir}/exit_code"))
attempt("swap metrics.jsonl for a link", lambda: swap_for_link(f"{jdir}/metrics.jsonl", f"{data}/secrets.json"))
attempt("swap metrics.jsonl for a FIFO", lambda: swap_for_fifo(f"{jdir}/metrics.jsonl"))
attempt("swap the datasets folder for a link to /etc", lambda: swap_for_link(f"{jdir}/datasets", "/etc"))
attempt("rename work/ away", lambda: os.rename(f"{jdir}/work", f"{jdir}/work2"))
attempt("hard-link /etc/shadow into work", lambda: os.link("/etc/shadow", "shadow"))

# platform state
for name in ("secrets.json", "jobqueue.sqlite", "registry.sqlite", "hub/jupyterhub.sqlite",
             "hub/jupyterhub_cookie_secret", "oci/config.yml"):
    attempt(f"read {name}", lambda name=name: read(f"{data}/{name}"))
for name in (".", "jobs", "home", "datasets", "workspaces", "code", "uploads", "hub", "oci"):
    attempt(f"list {name}/", lambda name=name: os.listdir(f"{data}/{name}"))

# other people, other workspaces
attempt("read another workspace's dataset version", lambda: read(targets["other_dataset_file"]))
attempt("list another workspace's datasets", lambda: os.listdir(targets["other_dataset_dir"]))
attempt("list another workspace's checkpoints", lambda: os.listdir(f"{data}/workspaces/{targets['other_workspace']}"))
attempt("list another person's job", lambda: os.listdir(f"{data}/jobs/{targets['other_job']}"))
attempt("list another person's home", lambda: os.listdir(f"{data}/home/{targets['other_user']}"))
attempt("read a staged code upload", lambda: os.listdir(f"{data}/code/{targets['code_id']}"))
attempt("dotdot out of the datasets folder", lambda: read(f"datasets/../../../{targets['other_job']}/output.log"))

# an endless metrics file: the API must still answer, reading only a bounded tail
with open(os.environ["FLIGHTBASE_METRICS_FILE"], "a") as f:
    line = '{"loss": 1.0}\n' * 4096
    for _ in range(1200):  # about 70 MB
        f.write(line)
    f.write('{"loss": 0.25, "step": 7}\n')

with open(os.path.join("datasets", targets["own_dataset"], "hello.txt")) as f:
    print("OWN", f.read().strip(), flush=True)
print("ATTACKS", json.dumps(results), flush=True)
