"""Marshmallow schemas of the API: what it accepts (query strings, forms and JSON bodies, read
by flask-smorest's ``@blp.arguments``) and what its main JSON reads answer (``@blp.response``)."""

from __future__ import annotations

from typing import Any

from flask import request
from marshmallow import INCLUDE, RAISE, Schema, fields, validate

from isd_service.domain.formats import FORMATS
from isd_service.domain.staging import MODES
from isd_service.entrypoints.errors import ApiError

MAX_VERSION = 2**31 - 1
Version = fields.Integer(strict=False, validate=validate.Range(min=1, max=MAX_VERSION))


class Strict(Schema):
    class Meta:
        unknown = RAISE


class SnapshotQuery(Strict):
    format = fields.String(load_default="json",
                           validate=validate.OneOf(["json", "ndjson", "csv"]))
    entity = fields.String(validate=validate.Length(min=1, max=63))


class DeltaQuery(Strict):
    from_ = fields.Integer(data_key="from", required=True,
                           validate=validate.Range(min=0, max=MAX_VERSION))
    to = fields.Integer(validate=validate.Range(min=1, max=MAX_VERSION))
    entity = fields.String(validate=validate.Length(min=1, max=63))
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "ndjson"]))
    detail = fields.String(validate=validate.OneOf(["previous"]), metadata={
        "description": "previous: every update also carries the record as it was"})


class PreviewQuery(Strict):
    detail = fields.String(validate=validate.OneOf(["previous"]), metadata={
        "description": "previous: every update also carries the record as it was"})


class PageQuery(Strict):
    limit = fields.Integer(validate=validate.Range(min=1, max=5000))
    cursor = fields.String(validate=validate.Length(min=1, max=2000))


class CatalogueQuery(Strict):
    version = fields.Integer(validate=validate.Range(min=1, max=MAX_VERSION))


class RecordsQuery(Schema):
    """Known parameters; any other parameter must be a field of the entity (a filter), which
    the view checks against the entity's catalogue."""

    class Meta:
        unknown = INCLUDE

    version = fields.Integer(validate=validate.Range(min=1, max=MAX_VERSION))
    effective_on = fields.Date()
    limit = fields.Integer(validate=validate.Range(min=1, max=5000))
    cursor = fields.String(validate=validate.Length(min=1, max=2000))


class LoadForm(Strict):
    format = fields.String(load_default="mdd-csv", validate=validate.OneOf(FORMATS))
    mode = fields.String(load_default="replace", validate=validate.OneOf(MODES))
    entity = fields.String(validate=validate.Length(min=1, max=100))


class PublicationBody(Strict):
    version = fields.Integer(strict=True, validate=validate.Range(min=1, max=MAX_VERSION),
                             allow_none=True)
    go_live_date = fields.Date(allow_none=True)
    force = fields.Boolean(load_default=False)


class DecisionBody(Strict):
    comment = fields.String(validate=validate.Length(max=500), allow_none=True)


def json_body() -> Any:
    """The request's JSON body, or 415 (not JSON) / 400 (not valid JSON)."""
    if not request.is_json:
        raise ApiError(415, "send a JSON body (Content-Type: application/json)",
                       slug="unsupported-media-type")
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(400, "the body is not valid JSON", slug="invalid-request")
    return body


# --- what the main reads answer (extra properties are allowed: answers may grow) -------------

class Answer(Schema):
    """Describes an answer that its view builds itself, as JSON-ready data.

    flask-smorest sends a view's answer through ``dump`` of its ``@blp.response`` schema, and
    marshmallow's dump keeps only the declared fields, in their declared order, converting
    each value. These answers may carry more than is declared (``unknown = INCLUDE``: they may
    grow, and some add keys, such as a new token's text), so ``dump`` gives the answer back as
    it is: the schema documents the answer and never reshapes it.
    """

    class Meta:
        unknown = INCLUDE

    def dump(self, obj: Any, *, many: bool | None = None) -> Any:
        return obj


class Problem(Answer):
    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    errors = fields.List(fields.Dict())


class EntityHash(Answer):
    records = fields.Integer(required=True)
    sha256 = fields.String(required=True)


class Manifest(Answer):
    version = fields.Integer(required=True)
    published_at = fields.String(required=True)
    go_live_date = fields.Date(required=True, allow_none=True)
    previous_version = fields.Integer(required=True, allow_none=True)
    sha256 = fields.String(required=True)
    catalogue_sha256 = fields.String(required=True)
    record_count = fields.Integer(required=True)
    entities = fields.Dict(keys=fields.String(), values=fields.Nested(EntityHash),
                           required=True)
    # absent: rule 1 (versions published before key ranges)
    hash_rule = fields.Integer()
    # "loads" (provenance, on /versions/{n}); named apart from Schema.loads
    loads_ = fields.List(fields.Dict(), data_key="loads")


class VersionPage(Answer):
    versions = fields.List(fields.Nested(Manifest), required=True)
    next_cursor = fields.String(required=True, allow_none=True)


class CatalogueOut(Answer):
    version = fields.Integer(required=True, allow_none=True)
    entities = fields.List(fields.Dict(), required=True)


class RecordPage(Answer):
    entity = fields.String(required=True)
    version = fields.Integer(required=True)
    records = fields.List(fields.Dict(), required=True)
    next_cursor = fields.String(required=True, allow_none=True)


class AuditPage(Answer):
    events = fields.List(fields.Dict(), required=True)
    next_cursor = fields.String(required=True, allow_none=True)


class TokenOut(Answer):
    id = fields.Integer(required=True)
    name = fields.String(required=True, allow_none=True,
                         metadata={"description": "the holder; null: unnamed"})
    organisation = fields.String(required=True)
    roles = fields.List(fields.String(), required=True)
    expires_at = fields.String(required=True, allow_none=True)
    revoked_at = fields.String(required=True, allow_none=True)


class TokenList(Answer):
    tokens = fields.List(fields.Nested(TokenOut), required=True)


class DatabaseHealth(Answer):
    status = fields.String(required=True, metadata={"enum": ["ok", "down"]})
    detail = fields.String()


class DownloadsHealth(Answer):
    status = fields.String(required=True, metadata={
        "enum": ["ok", "no-space", "read-only", "permission", "io-error"]})
    free_bytes = fields.Integer(required=True, allow_none=True)
    detail = fields.String()


class FailedBuild(Answer):
    version = fields.Integer(required=True)
    error = fields.String(allow_none=True)


class DownloadBuildsHealth(Answer):
    status = fields.String(required=True, metadata={"enum": ["ok", "stalled"]})
    queued = fields.Integer(required=True)
    running = fields.Integer(required=True)
    oldest_queued_seconds = fields.Integer(required=True, allow_none=True)
    last_failed = fields.Nested(FailedBuild)
    detail = fields.String()


class Health(Answer):
    status = fields.String(required=True, metadata={"enum": ["ok", "degraded", "down"]})
    database = fields.Nested(DatabaseHealth, required=True)
    downloads = fields.Nested(DownloadsHealth, required=True)
    download_builds = fields.Nested(DownloadBuildsHealth, metadata={
        "description": "the background builds of new versions' downloads (absent when the "
                       "database is down)"})


class PublicationRequestOut(Answer):
    request = fields.Integer(required=True)
    state = fields.String(required=True, metadata={
        "description": "awaiting-approval, published, rejected or void"})
    approvals_needed = fields.Integer(required=True)
    approvals = fields.Integer(required=True)
    manifest = fields.Dict(allow_none=True,
                           metadata={"description": "the version, once the last approval "
                                                    "published it"})
