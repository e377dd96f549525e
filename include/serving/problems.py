"""Error bodies of the recommendations API as RFC 7807 problem documents (RFC 9457).

Every error the API answers, whoever raises it (the handlers, the API key check, FastAPI's own
request validation, Starlette's routing, an unexpected exception), is
``application/problem+json``::

    {"type": "urn:trasos:api:problem:invalid-request", "title": "Invalid request",
     "status": 422, "detail": "invalid request: query.k: ...", "instance": "/v1/users/U1/...",
     "errors": [{"location": "query.k", "message": "..."}]}

``type`` is chosen by the status code (:data:`PROBLEM_TYPES`): clients switch on it, ``detail``
is for humans and logs, ``instance`` is the request path (never the query string), ``errors``
lists per-field problems (422 only; empty otherwise). :func:`install` registers the handlers
and makes the OpenAPI document declare every 4xx/5xx response with this media type.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("trasos.serving")

PROBLEM_MEDIA_TYPE = "application/problem+json"
#: Problem type URIs are URNs: stable identifiers to switch on, not links (RFC 9457 3.1.1
#: allows non-dereferenceable URIs); docs/serving.md ("Errors") documents each one.
TYPE_PREFIX = "urn:trasos:api:problem:"


@dataclass(frozen=True)
class ProblemType:
    slug: str
    title: str

    @property
    def uri(self) -> str:
        return TYPE_PREFIX + self.slug


#: The problem type of each status the API answers; any other status gets ``about:blank``
#: with the HTTP reason phrase as title (RFC 9457 4.2.1).
PROBLEM_TYPES: dict[int, ProblemType] = {
    400: ProblemType("bad-request", "Bad request"),
    401: ProblemType("missing-api-key", "API key missing"),
    403: ProblemType("invalid-api-key", "API key not valid"),
    404: ProblemType("not-found", "Not found"),
    405: ProblemType("method-not-allowed", "Method not allowed"),
    422: ProblemType("invalid-request", "Invalid request"),
    500: ProblemType("internal-error", "Internal server error"),
    503: ProblemType("model-not-loaded", "No model version loaded"),
}


class FieldError(BaseModel):
    location: str = Field(description="Where: 'query.k', 'path.user_id', ...")
    message: str


class Problem(BaseModel):
    """An RFC 7807 problem document (media type ``application/problem+json``)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "urn:trasos:api:problem:invalid-request",
                    "title": "Invalid request",
                    "status": 422,
                    "detail": "invalid request: query.k: Input should be less than or equal "
                    "to 20 (got '500')",
                    "instance": "/v1/users/U0000042/recommendations",
                    "errors": [
                        {
                            "location": "query.k",
                            "message": "Input should be less than or equal to 20 (got '500')",
                        }
                    ],
                }
            ]
        }
    )

    type: str = Field(
        description="The problem type: a URI to switch on (`urn:trasos:api:problem:<name>`, "
        "see docs/serving.md), or `about:blank`."
    )
    title: str = Field(description="Short summary of the problem type (same for every occurrence).")
    status: int = Field(description="The HTTP status code of this response.")
    detail: str = Field(description="What went wrong this time, for humans and logs.")
    instance: str = Field(description="The request path that failed.")
    errors: list[FieldError] = Field(default=[], description="Per-field errors (422 only).")


def problem_body(
    status: int, detail: str, instance: str, errors: list[FieldError] | None = None
) -> Problem:
    kind = PROBLEM_TYPES.get(status)
    if kind is None:
        uri, title = "about:blank", HTTPStatus(status).phrase
    else:
        uri, title = kind.uri, kind.title
    return Problem(
        type=uri, title=title, status=status, detail=detail, instance=instance, errors=errors or []
    )


def problem_response(
    request: Request,
    status: int,
    detail: str,
    *,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = problem_body(status, detail, request.url.path, errors)
    return JSONResponse(
        body.model_dump(), status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE
    )


def validation_errors(
    errors: Any, describe: Callable[[dict[str, Any]], FieldError]
) -> tuple[str, list[FieldError]]:
    described = [describe(error) for error in errors]
    detail = "invalid request: " + "; ".join(f"{e.location}: {e.message}" for e in described)
    return detail, described


def install(app: FastAPI, describe: Callable[[dict[str, Any]], FieldError]) -> None:
    """Problem documents for every error of ``app``; ``describe`` turns one pydantic
    validation error into a :class:`FieldError` (the app knows its id rule)."""

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        status = exc.status_code
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(status).phrase
        path = request.url.path
        if status == 404 and detail == "Not Found":  # Starlette's router: no such path
            detail = f"no endpoint at {path}: the API's paths are listed at /docs"
        elif status == 405 and detail == "Method Not Allowed":
            allowed = (exc.headers or {}).get("Allow", "")
            detail = f"{request.method} is not allowed on {path} (allowed: {allowed})"
        return problem_response(request, status, detail, headers=exc.headers)

    async def on_invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        detail, errors = validation_errors(exc.errors(), describe)
        return problem_response(request, 422, detail, errors=errors)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette's ServerErrorMiddleware answers with this, then re-raises: uvicorn logs
        # the traceback next to this line. The body tells nothing about the internals.
        error_id = secrets.token_hex(6)
        log.error(
            "unexpected error %s on %s %s: %s",
            error_id,
            request.method,
            request.url.path,
            type(exc).__name__,
        )
        return problem_response(
            request, 500, f"unexpected server error {error_id}; the API's log has the traceback"
        )

    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_invalid)
    app.add_exception_handler(Exception, on_unexpected)
    _declare_problem_responses(app)


def _declare_problem_responses(app: FastAPI) -> None:
    """The OpenAPI document: every 4xx/5xx response of every operation is
    ``application/problem+json`` (FastAPI files them under the route's media type), and
    every operation declares the 500."""

    generate = app.openapi  # FastAPI's own (it caches its result in app.openapi_schema)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        problem = {"schema": {"$ref": "#/components/schemas/Problem"}}
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                responses = operation.setdefault("responses", {})
                responses.setdefault(
                    "500",
                    {
                        "description": "Unexpected server error (logged with the id in `detail`).",
                        "content": {PROBLEM_MEDIA_TYPE: problem},
                    },
                )
                for code, response in responses.items():
                    if code[0] in "45":
                        # FastAPI files it under the route's media type (JSON, or text), and
                        # its own 422 (a route that declares none) as HTTPValidationError
                        response["content"] = {PROBLEM_MEDIA_TYPE: problem}
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422 bodies
            schemas.pop(unused, None)
        if "Problem" not in schemas:  # no route named the model itself
            own = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(own.pop("$defs", {}))
            schemas["Problem"] = own
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
