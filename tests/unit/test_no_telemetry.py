"""FastAPI's own OpenTelemetry bridge is off in both services (flightbase_server.service.app).

The services' metrics are their Prometheus pages; the bridge, on by default since FastAPI
0.16x, asks OpenTelemetry at every request whether a provider is set up, and with
``FASTAPI_OTEL_AUTO_CONFIGURE=true`` in the environment it would export every request to an
exporter the environment names. This builds both services' apps with that variable set."""

from __future__ import annotations

import inspect

import pytest
from fastapi import FastAPI

from flightbase_server.settings import PlatformSettings


@pytest.mark.skipif("telemetry" not in inspect.signature(FastAPI.__init__).parameters,
                    reason="this FastAPI has no telemetry bridge")
def test_the_services_apps_have_fastapis_telemetry_off(monkeypatch, tmp_path):
    from flightbase_jobqueue.app import build as build_jobqueue
    from flightbase_registry.app import build as build_registry

    monkeypatch.setenv("FASTAPI_OTEL_AUTO_CONFIGURE", "true")
    settings = PlatformSettings(data_dir=tmp_path)
    for app in (build_jobqueue(settings), build_registry(settings)):
        assert not app._native_telemetry.enabled()
        assert not any(app._telemetry[k] for k in ("tracing", "metrics", "logs"))
    assert FastAPI(telemetry={})._telemetry["tracing"]  # FastAPI's own default, left alone
