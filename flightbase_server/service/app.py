"""The application factory both services use.

Every route lives under the service's hub prefix (``/services/<name>/``); the
REST API under ``api/v1/``, described by ``api/v1/openapi.json``. ``/health``
is the one route that answers without credentials (for probes).

Two plain ASGI middlewares guard every request before the application reads
it: ``limits.RequestLimits`` (no credentials under ``api/``: 401 before the
body; bodies over their route's limit: 413) and ``xsrf.XsrfCheck``
(cookie-authenticated state changes without the service's XSRF token: 403).
Outside them ``metrics.RequestMetrics`` times every answer; ``<prefix>metrics``
is the Prometheus page (``metrics.add_route``: hub scope ``read:metrics`` or
the metrics token). Outermost, ``audit.AuditLog`` records every state-changing
API request, refused ones included (``GET api/v1/audit`` reads them back).
"""

from __future__ import annotations

import inspect
from contextlib import asynccontextmanager
from typing import Callable

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from flightbase_server.service import audit
from flightbase_server.service import auth as service_auth
from flightbase_server.service import metrics as service_metrics
from flightbase_server.service import xsrf
from flightbase_server.service.errors import install_handlers
from flightbase_server.service.limits import BodyLimits, RequestLimits


def service_prefix(name: str) -> str:
    from flightbase_server.settings import HubServiceEnv

    prefix = HubServiceEnv.from_env().service_prefix or f"/services/{name}/"
    return prefix if prefix.endswith("/") else prefix + "/"


# FastAPI's own OpenTelemetry bridge (FastAPI 0.16x: ``FastAPI(telemetry=...)``), off. The services'
# metrics are the Prometheus pages (docs/metrics.md); the bridge would otherwise ask OpenTelemetry
# whether a provider is configured at every request (it reads the environment each time), and
# ``FASTAPI_OTEL_AUTO_CONFIGURE`` in the environment could make it export requests elsewhere.
NO_TELEMETRY = ({"telemetry": {"tracing": False, "metrics": False, "logs": False}}
                if "telemetry" in inspect.signature(FastAPI.__init__).parameters else {})


def create_app(
    *,
    name: str,
    version: str,
    description: str,
    routers: list[APIRouter],
    startup: Callable,
    shutdown: Callable,
    health: Callable[[FastAPI], dict],
    hub_auth,
    metrics: service_metrics.Source | None = None,
) -> FastAPI:
    prefix = service_prefix(name)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await startup(app)
        try:
            yield
        finally:
            try:
                await shutdown(app)
            finally:
                close = getattr(hub_auth, "close", None)  # HubLogin's pool to the hub (tests pass others)
                if close is not None:
                    await close()

    app = FastAPI(
        title=f"Flightbase {name}",
        version=version,
        description=description,
        openapi_url=f"{prefix}api/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        **NO_TELEMETRY,
    )
    app.state.prefix = prefix
    app.state.hub_auth = hub_auth
    app.state.metrics_settings = service_metrics.MetricsSettings.from_env()
    install_handlers(app)

    @app.exception_handler(service_auth.LoginRedirect)
    async def _login(request: Request, exc: service_auth.LoginRedirect):
        return exc.response

    @app.get(f"{prefix}health", tags=["health"], summary="Liveness and readiness (no credentials needed)")
    async def _health() -> JSONResponse:
        body = {"status": "ok", "service": name, "version": version}
        body.update(health(app))
        return JSONResponse(body)

    app.add_api_route(f"{prefix}oauth_callback", service_auth.oauth_callback, methods=["GET"], include_in_schema=False)
    service_metrics.add_route(app, prefix, metrics)

    for router in routers:
        app.include_router(router, prefix=f"{prefix}api/v1")

    # the one added last runs first: credentials and body size are checked before the XSRF token
    app.add_middleware(xsrf.XsrfCheck, prefix=prefix, hub_cookie=hub_auth.cookie_name,
                       header_pattern=hub_auth.auth_header_pat, xsrf_cookie=xsrf.cookie_name(name))
    app.add_middleware(RequestLimits, prefix=prefix, hub_cookie=hub_auth.cookie_name,
                       header_pattern=hub_auth.auth_header_pat, limits=BodyLimits.of_service(name, prefix, app.state),
                       open_paths=frozenset({app.openapi_url}), guarded_paths=frozenset({service_metrics.path(prefix)}))
    app.add_middleware(service_metrics.RequestMetrics, service=name, prefix=prefix, application=app)
    audit.install(app, service=name, prefix=prefix, hub_auth=hub_auth)  # last: outermost, sees every answer
    return app
