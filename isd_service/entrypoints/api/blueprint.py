"""The blueprint every API module is built on: flask-smorest's, with this API's way of reading
requests.

``@bp.arguments(Schema, location=...)`` both parses a request's input with the schema and
documents it. Here:

- a query string that does not fit its schema is a 400, a JSON body or a form a 422 (the
  problem body is written by ``isd_service.entrypoints.errors``, from the data webargs
  aborts with);
- a schema's own ``unknown`` setting holds everywhere (webargs would otherwise drop unknown
  query parameters): our schemas refuse them;
- a JSON body must be sent as JSON (415) and be valid JSON (400), as ``json_body`` says;
  ``required=False`` lets it be left out entirely (then it is ``{}``);
- a form comes with files, so only as multipart/form-data (415): its fields are parsed by the
  schema, and its files, read by the view under any part name, are documented as ``file``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import flask_smorest
from flask import Request
from flask_smorest.fields import Upload
from marshmallow import Schema, fields
from webargs import core
from webargs.flaskparser import FlaskParser

from isd_service.entrypoints.api.schemas import json_body
from isd_service.entrypoints.errors import ApiError

QUERY_ERROR = 400
BODY_ERROR = 422
OPTIONAL_JSON = "optional_json"  # the parser's location for a JSON body that may be left out


class Parser(FlaskParser):
    def __init__(self) -> None:
        super().__init__(unknown=None)  # None: each schema's Meta.unknown decides
        self.__location_map__ = {**self.__location_map__, OPTIONAL_JSON: "load_optional_json"}

    def load_json(self, req: Request, schema: Schema) -> Any:
        return json_body()

    def load_optional_json(self, req: Request, schema: Schema) -> Any:
        return json_body() if req.content_length else core.missing

    def load_form(self, req: Request, schema: Schema) -> Any:
        if not req.mimetype.startswith("multipart/form-data"):
            raise ApiError(415, "send the files as multipart/form-data",
                           slug="unsupported-media-type")
        return super().load_form(req, schema)


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = Parser()
    DEFAULT_LOCATION_CONTENT_TYPE_MAPPING: ClassVar[dict[str, str]] = {
        "json": "application/json",
        OPTIONAL_JSON: "application/json",
        "form": "multipart/form-data",
    }

    def arguments(self, schema: Any, *, location: str = "json", required: bool = True,
                  **kwargs: Any) -> Any:
        kwargs.setdefault("error_status_code",
                          QUERY_ERROR if location == "query" else BODY_ERROR)
        if location == "json" and not required:
            location = OPTIONAL_JSON
        decorator = super().arguments(schema, location=location, required=required, **kwargs)
        if location != "form":
            return decorator

        def with_files(view: Any) -> Any:
            wrapper = decorator(view)
            documented = wrapper._apidoc["arguments"]["parameters"][-1]
            documented["schema"] = _with_files(documented["schema"])
            return wrapper

        return with_files


def _with_files(form: Schema | type[Schema]) -> type[Schema]:
    """The multipart body of ``form`` as documented: its fields and one or more files."""
    form_class = form if isinstance(form, type) else type(form)
    files = fields.List(Upload(), required=True,
                        metadata={"description": "one or more files (any part name)"})
    return type(form_class.__name__, (form_class,), {"file": files})
