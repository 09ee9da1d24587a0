"""The ports ``flightbase up`` chooses for its hub, proxy API, services and OCI registry.

A stop of the project's CI failed because the registry service was given the port the
test had chosen as the platform's public one: the proxy bound it first, and the registry
could not start. The kernel's choice of a free port is not one a test can steer, so the
first test stands a fake socket in for the kernel's, one that hands out a port that is
already taken before any other (said here, as the suite's rules ask of every fake); the
others use real sockets.
"""

from __future__ import annotations

import os
import socket

from flightbase_server import platform


class KernelHandingOut:
    """A socket whose bind to port 0 gets the next port of a fixed sequence."""

    def __init__(self, ports):
        self.ports = iter(ports)

    def __call__(self, *args, **kwargs):
        ports = self.ports

        class Sock:
            def bind(self, addr):
                self.port = next(ports)

            def getsockname(self):
                return ("127.0.0.1", self.port)

            def close(self):
                pass

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.close()

        return Sock()


def test_no_service_gets_the_public_port_or_another_services_port(tmp_path, monkeypatch):
    public = 40000
    # the kernel hands out the public port (not yet bound: the proxy binds it later), and
    # then one port twice (each probe socket closed before the next is opened)
    handed = [public, 40001, 40001, public, 40002, 40003, 40004, 40005, 40006, 40007]
    monkeypatch.setattr(platform.socket, "socket", KernelHandingOut(handed))
    settings, env, _ = platform.prepare(port=public, data_dir=tmp_path / "data", gpu_spec="2",
                                        environ={"PATH": os.environ["PATH"]})
    ports = [settings.hub_port, settings.proxy_api_port, settings.jobqueue_port,
             settings.registry_port, settings.registry_data_port]
    if settings.oci_registry_url:
        ports.append(int(settings.oci_registry_url.rsplit(":", 1)[1]))
    assert public not in ports
    assert len(set(ports)) == len(ports), ports


def test_an_operators_registry_data_port_is_given_to_no_other_service(tmp_path, monkeypatch):
    monkeypatch.setattr(platform.socket, "socket", KernelHandingOut([41000, 41001, 41002, 41003, 41004, 41005,
                                                                    41006, 41007]))
    settings, _, _ = platform.prepare(port=40000, data_dir=tmp_path / "data", gpu_spec="2",
                                      environ={"PATH": os.environ["PATH"],
                                               "FLIGHTBASE_REGISTRY_DATA_PORT": "41002"})
    assert settings.registry_data_port == 41002
    assert 41002 not in (settings.hub_port, settings.proxy_api_port, settings.jobqueue_port,
                         settings.registry_port)


def test_real_free_ports_are_distinct_and_can_be_bound():
    ports = platform.free_ports(12, taken={1})
    assert len(set(ports)) == 12
    held = []
    try:
        for port in ports:
            s = socket.socket()
            held.append(s)
            s.bind(("127.0.0.1", port))
    finally:
        for s in held:
            s.close()
