"""Errors as JSON: every 4xx names the field and the reason; no stack traces."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("flightbase_server.service")


class ApiError(Exception):
    """An error answered to the client: status, a message, and the fields concerned."""

    def __init__(self, status: int, message: str, *, field: str | None = None, errors: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = dict(errors or {})
        if field and field not in self.errors:
            self.errors[field] = message
        self.field = field or (next(iter(self.errors)) if len(self.errors) == 1 else None)

    def body(self) -> dict:
        body = {"status": self.status, "message": self.message}
        if self.field:
            body["field"] = self.field
        if self.errors:
            body["errors"] = self.errors
        return body


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} not found")


def _loc_to_field(loc) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        errors: dict[str, str] = {}
        for err in exc.errors():
            field = _loc_to_field(err.get("loc", ()))
            msg = err.get("msg", "invalid")
            if err.get("type") == "extra_forbidden":
                msg = "unknown field"
            elif err.get("type") == "json_invalid":
                field, msg = "body", "is not valid JSON"
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, ") :]
            errors.setdefault(field, msg)
        message = "; ".join(f"{f}: {m}" for f, m in errors.items())
        return JSONResponse(ApiError(422, message, errors=errors).body(), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else "error"
        return JSONResponse({"status": exc.status_code, "message": message}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("Unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"status": 500, "message": "internal error; see the service log"}, status_code=500)
