"""Every error answer, from one place, as application/problem+json (RFC 9457).

Use cases refuse with domain errors (domain/errors.py), each carrying its HTTP status and
problem type; the views only parse input, call the service layer and present results.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from flask import Flask, Response, current_app, json
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

from isd_service.domain.errors import DomainError
from isd_service.domain.validation import LoadRejected

log = logging.getLogger(__name__)
PROBLEM_TYPE = "https://isd.invalid/problems/"  # stable identifiers, not fetchable pages
# Retry-After (seconds) of a 503: what is missing (the database, a download) is expected back
RETRY_AFTER = 30
# webargs' location of a request's input -> what a problem's detail calls it
INPUTS = {"query": "query", "json": "body", "optional_json": "body", "form": "form"}


class ApiError(Exception):
    """An error a view raises to answer with a problem body."""

    def __init__(self, status: int, detail: str, *, slug: str | None = None,
                 errors: list[dict[str, Any]] | None = None, **extra: Any):
        self.status = status
        self.detail = detail
        self.slug = slug
        self.errors = errors
        self.extra = extra
        super().__init__(detail)


def problem(status: int, detail: str, *, slug: str | None = None,
            errors: list[dict[str, Any]] | None = None, **extra: Any) -> Response:
    title = HTTPStatus(status).phrase
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + (slug or title.lower().replace(" ", "-")),
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    body.update(extra)
    response = current_app.response_class(
        json.dumps(body), status=status, mimetype="application/problem+json")
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="isd"'
    if status == 503:
        response.headers["Retry-After"] = str(RETRY_AFTER)
    return response


def capped(errors: list[dict[str, Any]]) -> dict[str, Any]:
    """Keep the first MAX_REPORTED_ERRORS errors, and say how many there were in all."""
    limit = current_app.config["MAX_REPORTED_ERRORS"]
    return {"errors": errors[:limit], "error_count": len(errors),
            "errors_truncated": len(errors) > limit}


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return problem(exc.status, exc.detail, slug=exc.slug, errors=exc.errors, **exc.extra)

    @app.errorhandler(LoadRejected)
    def _load_rejected(exc: LoadRejected) -> Response:
        body = capped([p.to_dict() for p in exc.problems])
        return problem(exc.status, exc.detail, slug=exc.slug, **body)

    @app.errorhandler(DomainError)
    def _refused(exc: DomainError) -> Response:
        # A refusal may carry more members (relations: error_count) and name its cause in a
        # word (a download unavailable: no-space, read-only, ...).
        extra = dict(getattr(exc, "extra", {}))
        cause = getattr(exc, "cause", None)
        if isinstance(cause, str):
            extra["cause"] = cause
        response = problem(exc.status, exc.detail, slug=exc.slug, errors=exc.errors, **extra)
        retry_after = getattr(exc, "retry_after", None)  # when it knows better than 30 s
        if isinstance(retry_after, int) and exc.status == 503:
            response.headers["Retry-After"] = str(retry_after)
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        # What an abort of webargs (flask-smorest's @bp.arguments) attached: the messages of
        # a request's input that does not fit its schema, under their location; an abort may
        # also carry a message and headers.
        data: dict[str, Any] = getattr(exc, "data", None) or {}
        if isinstance(data.get("messages"), dict) and data["messages"]:
            location, messages = next(iter(data["messages"].items()))
            response = problem(status, f"the request's {INPUTS.get(location, location)} is "
                                       "not valid", slug="invalid-request",
                               errors=schema_errors(messages))
        else:
            detail = data.get("message") or exc.description or HTTPStatus(status).phrase
            if status == 413:
                detail = (f"the request is larger than the limit of "
                          f"{current_app.config['MAX_CONTENT_LENGTH']} bytes")
            response = problem(status, detail)
        response.headers.extend(data.get("headers") or {})
        return response

    @app.errorhandler(OperationalError)
    def _database_down(exc: OperationalError) -> Response:
        log.error("database unavailable: %s", exc.__class__.__name__)
        return problem(503, "the database is unavailable; try again shortly")

    @app.errorhandler(DBAPIError)
    def _database_error(exc: DBAPIError) -> Response:
        log.exception("database error")
        return problem(500, "internal error")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unexpected error")
        return problem(500, "internal error")


def schema_errors(messages: Any) -> list[dict[str, Any]]:
    """Turn marshmallow's messages into the problem body's list of errors."""
    return [{"field": name, "message": "; ".join(_flatten(msgs))}
            for name, msgs in _as_dict(messages).items()]


def _as_dict(messages: Any) -> dict[str, Any]:
    return messages if isinstance(messages, dict) else {"_request": messages}


def _flatten(messages: Any) -> list[str]:
    if isinstance(messages, dict):
        return [f"{k}: {m}" for k, v in messages.items() for m in _flatten(v)]
    if isinstance(messages, list):
        return [str(m) for m in messages]
    return [str(messages)]
