"""The OpenAPI 3 document of the HTTP API, built from the app's registered routes.

Every route under /api is walked, so a new route appears without being listed here. Its
parameters and body come from the marshmallow schemas the view validates with (a schema
class the view's code names: a query for GET and DELETE, a JSON body for POST, PATCH and
PUT, a multipart form when the schema's name ends in ``Form``). The answers of the main
JSON reads are described by the output schemas of isd_service.entrypoints.api.schemas; any
other answer is documented by its status alone, and every error as a problem
(application/problem+json).
"""

from __future__ import annotations

import inspect
import re
from typing import Any, cast

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask, current_app
from marshmallow import Schema
from werkzeug.routing import Rule

from isd_service.entrypoints.api.schemas import (
    Answer,
    AuditPage,
    CatalogueOut,
    Manifest,
    Problem,
    RecordPage,
    TokenList,
    TokenOut,
    VersionPage,
)

API_PREFIX = "/api/"
ADMIN_PREFIX = "/api/v1/admin"
OPENAPI_VERSION = "3.0.3"
_CONVERTER = re.compile(r"<(?:(?P<conv>[a-z]+)(?:\([^)]*\))?:)?(?P<name>\w+)>")
_SKIPPED_METHODS = {"HEAD", "OPTIONS"}


# endpoint -> the schema of its JSON success answer
RESPONSES: dict[str, type[Schema]] = {
    "public.get_catalogue": CatalogueOut,
    "public.list_versions": VersionPage,
    "public.get_latest": Manifest,
    "public.get_manifest": Manifest,
    "public.get_records": RecordPage,
    "governance.get_audit": AuditPage,
    "governance.get_tokens": TokenList,
    "governance.delete_token": TokenOut,
    "governance.post_token": TokenOut,
}
# endpoint -> content types of its success answer, where it is not (only) JSON
CONTENT_TYPES: dict[str, list[str]] = {
    "public.get_snapshot": ["application/json", "application/x-ndjson", "application/zip"],
    "public.get_delta": ["application/json", "application/x-ndjson"],
    "public.get_mdd_file": ["text/csv"],
}

# endpoints whose JSON body may be left out
OPTIONAL_BODIES = {"admin.post_publication"}


def init_app(app: Flask) -> None:
    """Serve the document at /api/v1/openapi.json (built once, on first request)."""
    built: list[dict[str, Any]] = []

    def openapi_document() -> Any:
        """The OpenAPI 3 document of this API."""
        if not built:
            built.append(build(current_app))
        return built[0]

    app.add_url_rule("/api/v1/openapi.json", "openapi", openapi_document, methods=["GET"])
    RESPONSES["openapi"] = Answer


def build(app: Flask) -> dict[str, Any]:
    """The OpenAPI document of every /api route of ``app``."""
    spec = APISpec(
        title="Industry Standing Data (ISD)", version="1", openapi_version=OPENAPI_VERSION,
        plugins=[MarshmallowPlugin(schema_name_resolver=cast(Any, _no_name))],
        info={"description": "Versioned ISD/MDD: public reads without authentication; "
                             "admin changes with a bearer token."},
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.rule.startswith(API_PREFIX) or rule.endpoint == "static":
            continue
        path, path_params = _path(rule)
        view = app.view_functions[rule.endpoint]
        for method in sorted((rule.methods or set()) - _SKIPPED_METHODS):
            paths.setdefault(path, {})[method.lower()] = _operation(
                rule, method, view, path_params)
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()


def _no_name(_schema: Any) -> None:
    """Inline every schema: names of request schemas of different modules may clash."""
    return None


def _path(rule: Rule) -> tuple[str, list[dict[str, Any]]]:
    params = []

    def replace(match: re.Match[str]) -> str:
        conv, name = match.group("conv") or "string", match.group("name")
        schema: dict[str, Any] = ({"type": "integer"} if conv == "int" else
                                  {"type": "string", "pattern": "^[^/]+$"})
        if conv == "int" and "signed=True" not in match.group(0):
            schema["minimum"] = 0
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
        return "{" + name + "}"

    return _CONVERTER.sub(replace, rule.rule), params


def request_schemas(view: Any) -> list[type[Schema]]:
    """The marshmallow schema classes a view's code names (what it validates input with)."""
    func = inspect.unwrap(view)
    code = getattr(func, "__code__", None)
    if code is None:
        return []
    found = []
    for name in code.co_names:
        value = func.__globals__.get(name)
        if isinstance(value, type) and issubclass(value, Schema) and value not in found:
            found.append(value)
    return found


def _operation(rule: Rule, method: str, view: Any,
               path_params: list[dict[str, Any]]) -> dict[str, Any]:
    doc = inspect.getdoc(view) or rule.endpoint.replace("_", " ")
    operation: dict[str, Any] = {
        "operationId": f"{rule.endpoint}.{method.lower()}",
        "summary": doc.splitlines()[0],
        "tags": [rule.endpoint.split(".")[0]],
        "parameters": list(path_params),
        "responses": _responses(rule, method),
    }
    for schema in request_schemas(view):
        if method in ("GET", "DELETE"):
            operation["parameters"].append({"in": "query", "schema": schema})
        elif schema.__name__.endswith("Form"):
            operation["requestBody"] = {"required": True, "content": {
                "multipart/form-data": {"schema": _form(schema)}}}
        else:
            operation["requestBody"] = {
                "required": rule.endpoint not in OPTIONAL_BODIES,
                "content": {"application/json": {"schema": schema}}}
    if _is_admin(rule.rule):
        operation["security"] = [{"bearer": []}]
    return operation


def _form(schema: type[Schema]) -> dict[str, Any]:
    properties: dict[str, Any] = {"file": {"type": "array",
                                           "items": {"type": "string", "format": "binary"}}}
    for name, field in schema().fields.items():
        prop: dict[str, Any] = {"type": "string"}
        choices = getattr(field.validate, "choices", None)
        if choices:
            prop["enum"] = list(choices)
        properties[field.data_key or name] = prop
    return {"type": "object", "properties": properties, "required": ["file"]}


def _responses(rule: Rule, method: str) -> dict[str, Any]:
    status = "201" if method == "POST" else "200"
    success: dict[str, Any] = {"description": "success"}
    if rule.endpoint in RESPONSES:
        success["content"] = {"application/json": {"schema": RESPONSES[rule.endpoint]}}
    elif rule.endpoint in CONTENT_TYPES:
        success["content"] = {ct: {"schema": {}} for ct in CONTENT_TYPES[rule.endpoint]}
    problem = {"description": "a problem (RFC 9457)",
               "content": {"application/problem+json": {"schema": Problem}}}
    responses: dict[str, Any] = {status: success, "default": problem}
    if status == "201":
        # Some POSTs answer 200 (an action rather than a new resource) or 202.
        responses["200"] = {"description": "success"}
        responses["202"] = {"description": "accepted"}
    else:
        responses["304"] = {"description": "not modified (a conditional GET)"}
    return responses


def _is_admin(path: str) -> bool:
    return path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")
