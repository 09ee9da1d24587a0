"""The extension installs from its wheel where there is no Node: the built front end is in it.

The wheel is built the way a release is (``pip wheel``; the front end was built
by ``make``), then installed into an empty prefix by a process whose PATH has
no ``node`` or ``npm``, and JupyterLab's own ``labextension list`` finds it
there, enabled, with its server extension.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_the_wheel_carries_the_built_front_end_and_installs_without_node(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                    str(tmp_path / "dist"), str(ROOT / "flightbase_labext")], check=True, cwd=tmp_path, timeout=600)
    wheel = next((tmp_path / "dist").glob("flightbase_labext-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    share = "flightbase_labext-0.1.0.data/data/share/jupyter/labextensions/flightbase-labext/"
    assert share + "package.json" in names and share + "install.json" in names
    assert any(n.startswith(share + "static/remoteEntry.") and n.endswith(".js") for n in names)
    assert any(n.endswith("etc/jupyter/jupyter_server_config.d/flightbase_labext.json") for n in names)

    no_node = {"PATH": str(BIN), "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    import shutil

    assert not shutil.which("node", path=str(BIN)) and not shutil.which("npm", path=str(BIN)), \
        "this check needs a PATH without Node"
    prefix = tmp_path / "prefix"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--ignore-installed", "--prefix", str(prefix), str(wheel)],
                   check=True, env=no_node, timeout=300)
    env = {**no_node, "JUPYTER_PATH": str(prefix / "share" / "jupyter"),
           "JUPYTER_CONFIG_PATH": str(prefix / "etc" / "jupyter"),
           "PYTHONPATH": os.pathsep.join(str(p) for p in prefix.glob("lib/python*/site-packages"))}
    listed = subprocess.run([str(BIN / "jupyter"), "labextension", "list"], env=env, capture_output=True, text=True,
                            timeout=120)
    out = listed.stdout + listed.stderr
    # the listing is grouped by folder: the copy found under the empty prefix, enabled and OK
    section = out.split(str(prefix / "share" / "jupyter" / "labextensions"), 1)[-1].split("\n/", 1)[0]
    line = next((l for l in section.splitlines() if "flightbase-labext" in l), "")
    assert str(prefix) in out and "enabled" in line and "OK" in line, out
    servers = subprocess.run([str(BIN / "jupyter"), "server", "extension", "list"], env=env, capture_output=True,
                             text=True, timeout=120)
    assert "flightbase_labext" in servers.stdout + servers.stderr
