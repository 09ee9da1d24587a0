"""Prometheus metrics of both services: API latency by route, and the protected ``<prefix>metrics`` page.

What is inside:

- ``API_LATENCY`` and ``RequestMetrics``: a plain ASGI middleware (outermost,
  so it also times the answers the request guards give before routing) that
  observes ``flightbase_api_request_duration_seconds{service,method,route,status}``.
  ``route`` is the route's template without the service prefix
  (``/api/v1/jobs/{job_id}``), never the raw path: one series per route, not
  one per job id (``routed_template``; ``RouteTemplates`` for requests refused
  before routing). A path that matches no route is ``unmatched``; a method
  outside HTTP's usual ones is ``other`` (labels stay bounded whatever a
  client sends).
- ``MetricsSettings``: the metrics token (``FLIGHTBASE_METRICS_TOKEN``), read
  once at start-up.
- ``add_route``: ``GET <prefix>metrics``, protected as JupyterHub protects
  ``/hub/metrics`` (``jupyterhub.utils.metrics_authentication``): a hub token,
  or the hub's OAuth cookie, whose scopes include ``read:metrics`` (the hub's
  ``admin`` role has it); or the metrics token, compared in constant time, for
  a scraper with no hub account. No credentials: 401, answered by
  ``limits.RequestLimits`` before the route runs (``guarded_paths``); a token
  the hub does not know: 401; a hub token without the scope: 403.

The page is the process's default registry (the metrics above, each service's
own histograms and counters, and ``prometheus_client``'s process metrics)
followed by what the service's ``Source`` collects at scrape time: gauges
that describe state are computed from the running service when Prometheus
asks, never kept in step by hand.
"""

from __future__ import annotations

import hmac
import os
import re
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Iterable, Sequence

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import REGISTRY, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from starlette.routing import compile_path

from flightbase_server.service.asgi import StatusSend
from flightbase_server.service.errors import ApiError

READ_METRICS = "read:metrics"  # the hub scope /hub/metrics asks for
TOKEN_ENV = "FLIGHTBASE_METRICS_TOKEN"
MIN_TOKEN_LENGTH = 16
UNAUTHENTICATED = (f"authentication required: send 'Authorization: Bearer <metrics token>' or a hub token "
                   f"with the scope {READ_METRICS}")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"

# Requests range from a health probe (milliseconds) to a chunk of an upload or a
# long poll (a minute or more): the default buckets, stretched to two minutes.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

API_LATENCY = Histogram(
    "flightbase_api_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by service, method, route template and status.",
    ["service", "method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)


def path(prefix: str) -> str:
    """Where a service serves its metrics."""
    return f"{prefix}metrics"


# What a service adds at scrape time: called on the event loop for each scrape.
Source = Callable[[FastAPI], Awaitable[Sequence[Collector]]]


@dataclass(frozen=True)
class MetricsSettings:
    """The metrics token, for a scraper with no hub account ("" : only hub tokens with read:metrics)."""

    token: str = ""

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "MetricsSettings":
        environ = os.environ if environ is None else environ
        token = (environ.get(TOKEN_ENV) or "").strip()
        if token and len(token) < MIN_TOKEN_LENGTH:
            # a short secret is a guessable one: a configuration error, not a weaker default
            raise ValueError(f"{TOKEN_ENV} must be at least {MIN_TOKEN_LENGTH} characters "
                             f"(e.g. `openssl rand -hex 32`); it has {len(token)}")
        return cls(token=token)

    def accepts(self, presented: str) -> bool:
        """Whether ``presented`` is the metrics token (constant time)."""
        return bool(self.token) and hmac.compare_digest(presented.encode(), self.token.encode())


class RequestMetrics:
    """ASGI middleware: observe every HTTP request's duration, by route template and status.

    A plain ASGI class (not ``BaseHTTPMiddleware``) so that upload bodies and
    streamed answers pass through untouched; the time runs until the answer's
    last byte is handed to the server.
    """

    def __init__(self, app, *, service: str, prefix: str, application: FastAPI):
        self.app = app
        self.service = service
        self.prefix = prefix
        self.templates = RouteTemplates(application)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        began = time.perf_counter()
        timed_send = StatusSend(send)
        try:
            await self.app(scope, receive, timed_send)
        finally:
            status = timed_send.status
            method = scope["method"] if scope["method"] in METHODS else "other"
            template = routed_template(scope) or self.templates.find(scope["method"], scope["path"])
            API_LATENCY.labels(self.service, method, self.label(template), str(status)).observe(
                time.perf_counter() - began)

    def label(self, template: str | None) -> str:
        if not template:
            return UNMATCHED
        return "/" + template[len(self.prefix):] if template.startswith(self.prefix) else template


_PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")


def routed_template(scope) -> str | None:
    """The full template of the route the router chose (``scope["route"]``), or None before routing.

    A route of an included router knows its template without the include's
    prefix (FastAPI keeps included routers apart since 0.1xx); the prefix is
    what is left of the path once the route's own part, filled with the
    request's path parameters, is taken off its end.
    """
    route = scope.get("route")
    own = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not own:
        return None
    params = scope.get("path_params") or {}
    try:
        filled = _PARAM.sub(lambda m: str(params[m.group(1)]), own)
    except KeyError:
        return own
    path = scope["path"]
    return path[:len(path) - len(filled)] + own if path.endswith(filled) else own


class RouteTemplates:
    """The application's route templates, for requests answered before routing (401, 413, 403 XSRF).

    Read once, at the first such request (every route exists by then): the
    OpenAPI document's paths (every API route, however it was included) and
    the top-level routes outside it (``/metrics``, pages). The document drops
    path converters, so ``{path}`` matches one segment here; a deeper path
    is ``unmatched``. Routed requests never come here (``routed_template``).
    """

    def __init__(self, application: FastAPI):
        self.application = application
        self._table: list[tuple[re.Pattern, frozenset[str] | None, str]] | None = None

    def table(self) -> list[tuple[re.Pattern, frozenset[str] | None, str]]:
        if self._table is None:
            table = []
            try:
                for template, operations in self.application.openapi().get("paths", {}).items():
                    methods = frozenset(m.upper() for m in operations)
                    table.append((compile_path(template)[0], methods, template))
            except Exception:  # a document that cannot be made: the top-level routes still count
                pass
            for route in self.application.router.routes:
                template = getattr(route, "path", None)
                if template:
                    methods = getattr(route, "methods", None)
                    table.append((compile_path(template)[0], frozenset(methods) if methods else None, template))
            self._table = table
        return self._table

    def find(self, method: str, path: str) -> str | None:
        """The template of the first route for this method and path, else of the first for the path."""
        partial = None
        for regex, methods, template in self.table():
            if regex.match(path):
                if methods is None or method in methods or (method == "HEAD" and "GET" in methods):
                    return template
                partial = partial or template
        return partial


class _Together:
    """The default registry and a scrape's own collectors, as one registry for ``generate_latest``."""

    def __init__(self, collectors: Sequence[Collector]):
        self.collectors = collectors

    def collect(self) -> Iterable[Metric]:
        yield from REGISTRY.collect()
        for collector in self.collectors:
            yield from collector.collect()


def presented_token(request: Request) -> tuple[str | None, bool]:
    """(the credential the request carries, whether it came in the Authorization header)."""
    auth = request.app.state.hub_auth
    match = auth.auth_header_pat.match(request.headers.get("authorization") or "")
    if match:
        return match.group(1).strip(), True
    return request.cookies.get(auth.cookie_name), False


async def check_access(request: Request) -> str:
    """Who may read the metrics: "metrics-token", or the hub name of a holder of read:metrics; else 401/403."""
    token, in_header = presented_token(request)
    if not token:
        raise ApiError(401, UNAUTHENTICATED)
    settings: MetricsSettings = request.app.state.metrics_settings
    if in_header and settings.accepts(token):
        return "metrics-token"
    auth = request.app.state.hub_auth
    model = await auth.user_for_token(token, use_cache=auth.cache_max_age > 0, sync=False)
    if model is None:
        raise ApiError(401, "the token is neither the metrics token nor a valid hub token (expired or revoked?)")
    if READ_METRICS not in (model.get("scopes") or ()):
        raise ApiError(403, f"reading the metrics needs the hub scope {READ_METRICS} (administrators hold it) "
                            f"or the metrics token ({TOKEN_ENV})")
    return model["name"]


def add_route(app: FastAPI, prefix: str, source: Source | None) -> None:
    """``GET <prefix>metrics``: the Prometheus text (or OpenMetrics, as the scraper's Accept asks)."""

    async def metrics(request: Request) -> Response:
        await check_access(request)
        collectors = await source(request.app) if source is not None else ()
        encoder, content_type = choose_encoder(request.headers.get("accept") or "")
        return Response(encoder(_Together(collectors)), media_type=content_type)

    app.add_api_route(path(prefix), metrics, methods=["GET"], include_in_schema=False)
