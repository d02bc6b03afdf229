"""The OpenAPI 3 document of the HTTP API, built by flask-smorest from the API blueprints.

Each view documents itself with the schemas it parses and answers with (``@bp.arguments``,
``@bp.response``: see isd_service.entrypoints.api.blueprint and .schemas). What holds for
every operation is added here, where each path is registered: its path parameters, an id and
a summary, every error as a problem (application/problem+json), and the bearer token on
/api/v1/admin. Every schema is written inline (names of schemas of different modules may
clash). The document is served at /api/v1/openapi.json, and flask-smorest's own routes for it
(and its documentation pages) are off.
"""

from __future__ import annotations

from collections.abc import Mapping
from copy import deepcopy
from http import HTTPStatus
from typing import Any, cast

import flask_smorest
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask
from flask_smorest.spec.plugins import FlaskPlugin
from werkzeug.routing import Rule, UnicodeConverter

from isd_service.entrypoints.api.schemas import Answer, Problem

ADMIN_PREFIX = "/api/v1/admin"
DOCUMENT_PATH = "/api/v1/openapi.json"
OPENAPI_VERSION = "3.0.3"
PROBLEM = "application/problem+json"


class Api(flask_smorest.Api):
    """flask-smorest's Api: the document of the blueprints registered through it."""

    # Every operation's default answer is a problem, added by _Paths.
    DEFAULT_ERROR_RESPONSE_NAME = None

    def __init__(self, app: Flask) -> None:
        super().__init__(app, spec_kwargs={
            "title": "Industry Standing Data (ISD)",
            "version": "1",
            "openapi_version": OPENAPI_VERSION,
            "info": {"description": "Versioned ISD/MDD: public reads without authentication; "
                                    "admin changes with a bearer token."},
            "flask_plugin": _Paths(),
            "marshmallow_plugin": MarshmallowPlugin(
                schema_name_resolver=cast(Any, _inline)),
        })

    def _init_spec(self, **kwargs: Any) -> None:
        super()._init_spec(**kwargs)
        self.spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
        # flask-smorest also adds an `openapi` command group to the app's CLI (and so to
        # `isd`); the document is served at /api/v1/openapi.json, and `isd` stays as it was.
        self._app.cli.commands.pop("openapi", None)

    def _register_error_handlers(self) -> None:
        """None: isd_service.entrypoints.errors answers every error, webargs' and
        flask-smorest's aborts included, as a problem (flask-smorest's own error body would
        differ)."""

    def _register_doc_blueprint(self) -> None:
        """Serve the document at /api/v1/openapi.json (built once, on first request)."""
        built: list[dict[str, Any]] = []

        def openapi_document() -> Any:
            """The OpenAPI 3 document of this API."""
            if not built:
                built.append(self.spec.to_dict())
            return built[0]

        self._app.add_url_rule(DOCUMENT_PATH, "openapi", openapi_document, methods=["GET"])
        rule = next(self._app.url_map.iter_rules("openapi"))
        self.spec.path(rule=rule, operations={"get": {
            "summary": openapi_document.__doc__,
            "tags": ["openapi"],
            "responses": {200: {"description": "OK",
                                "content": {"application/json": {"schema": Answer}}}},
        }})


class _Paths(FlaskPlugin):
    """flask-smorest's plugin for Flask rules, completing each path's operations."""

    def __init__(self) -> None:
        super().__init__()
        self.converter_mapping[UnicodeConverter] = _string_parameter

    def path_helper(self, rule: Rule, operations: dict[str, Any], parameters: list[Any],
                    **kwargs: Any) -> str:
        path: str = super().path_helper(rule, operations, parameters, **kwargs)
        # flask-smorest lists path parameters once for the path: list them in each operation.
        in_path = [p for p in parameters if isinstance(p, Mapping) and p.get("in") == "path"]
        parameters[:] = [p for p in parameters if p not in in_path]
        for method, operation in operations.items():
            operation.setdefault("operationId", f"{rule.endpoint}.{method}")
            operation.setdefault("summary", rule.endpoint.replace("_", " "))
            if in_path or operation.get("parameters"):
                operation["parameters"] = deepcopy(in_path) + operation.get("parameters", [])
            responses = operation.setdefault("responses", {})
            for status, response in responses.items():
                if isinstance(response, str):  # a named error answer (@bp.arguments adds one)
                    responses[status] = _problem(HTTPStatus(int(status)).phrase)
            responses["default"] = _problem("a problem (RFC 9457)")
            if path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
                operation["security"] = [{"bearer": []}]
        return path


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM: {"schema": Problem}}}


def _string_parameter(_converter: Any) -> dict[str, Any]:
    return {"type": "string", "pattern": "^[^/]+$"}


def _inline(_schema: Any) -> None:
    """Inline every schema: names of schemas of different modules may clash."""
    return None
