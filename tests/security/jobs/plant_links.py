"""A hostile job that plants links in its working directory, then waits to be preempted.

On its first run it fills work/ with links into /etc (a folder link, a file link, a link
deep in a sub-folder, a FIFO, and the datasets link swapped for /etc) and sleeps; on a
restart ($FLIGHTBASE_RESTARTS > 0) it reports what it finds and ends. A platform that
walked or chowned work/ as root on the restart would have given it /etc.
"""
import json
import os
import stat
import time

if os.environ.get("FLIGHTBASE_RESTARTS", "0") == "0":
    os.symlink("/etc", "etc-link")
    os.symlink("/etc/shadow", "shadow-link")
    os.makedirs("deep/er")
    os.symlink("/etc/passwd", "deep/er/passwd-link")
    os.mkfifo("fifo")
    if os.path.lexists("datasets"):
        os.unlink("datasets")
    os.symlink("/etc", "datasets")
    print("planted", flush=True)
    time.sleep(600)
else:
    st = os.stat("/etc/shadow")
    print("RESTARTED", json.dumps({"shadow_uid": st.st_uid, "can_write_etc": os.access("/etc", os.W_OK)}), flush=True)
