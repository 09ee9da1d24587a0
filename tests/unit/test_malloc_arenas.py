"""The services' processes keep glibc's malloc to two arenas (flightbase_server.service.run.limit_malloc_arenas).

Each case runs in a child interpreter, where it can be the first thing the process does, as
``serve`` does it: eight threads then allocate, and glibc's own report (``malloc_info``) counts
the arenas ("heaps") the process holds."""

from __future__ import annotations

import ctypes.util
import json
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="glibc's malloc only")

CHILD = r"""
import ctypes, ctypes.util, json, os, sys, tempfile, threading
limited = None
if sys.argv[1] == "limit":
    from flightbase_server.service.run import limit_malloc_arenas
    limited = limit_malloc_arenas()
held, ready = [], threading.Barrier(9)
def work():
    held.append(bytearray(1 << 20))  # a large block, from malloc (not Python's small-object allocator)
    ready.wait()
    ready.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
ready.wait()  # every thread holds its block: count the arenas now
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
path = os.path.join(tempfile.mkdtemp(), "info.xml")
fp = libc.fopen(path.encode(), b"w")
libc.malloc_info(0, fp)
libc.fclose(fp)
ready.wait()
for t in threads:
    t.join()
print(json.dumps({"limited": limited, "heaps": open(path).read().count("<heap nr=")}))
"""


def run_child(mode: str, **env) -> dict:
    environ = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    out = subprocess.run([sys.executable, "-c", CHILD, mode], env={**environ, **env}, check=True,
                         capture_output=True, text=True, timeout=60)
    return json.loads(out.stdout)


def test_a_service_process_keeps_two_arenas_where_its_threads_would_have_made_more():
    assert ctypes.util.find_library("c")
    unlimited = run_child("plain")
    assert unlimited["heaps"] > 2  # what eight threads get without the limit: an arena each, or near
    limited = run_child("limit")
    assert limited == {"limited": True, "heaps": 2}


def test_an_operators_malloc_arena_max_is_left_to_apply():
    found = run_child("limit", MALLOC_ARENA_MAX="4")
    assert found["limited"] is False and found["heaps"] <= 4
