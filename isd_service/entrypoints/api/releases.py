"""The release calendar over HTTP: public reads (JSON, iCalendar, previews, the version live on
a day) and the admin's planning (create, change, cancel, loads into a frozen release, the
schedule)."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from isd_service.adapters import repository
from isd_service.config import EMPTY_POLICIES
from isd_service.domain import delta
from isd_service.domain.formats import FORMATS, ical
from isd_service.domain.manifest import manifest
from isd_service.domain.staging import MODES
from isd_service.entrypoints.api.admin import load_files, load_summary, uploaded_files
from isd_service.entrypoints.api.blueprint import Blueprint
from isd_service.entrypoints.api.guard import caller, protect, requires
from isd_service.entrypoints.api.schemas import MAX_VERSION, Manifest, PreviewQuery
from isd_service.entrypoints.errors import ApiError
from isd_service.entrypoints.flask_db import session, uow
from isd_service.service_layer import calendar
from isd_service.service_layer import schedule as steps
from isd_service.service_layer.calendar import get_release, release_dict

public_bp = Blueprint("releases", __name__, description="The release calendar")
admin_bp = Blueprint("releases_admin", __name__, description="Planning the releases")


# --- schemas ------------------------------------------------------------------------------

class ReleaseBody(Schema):
    """A planned release; times are ISO 8601 with their offset."""

    class Meta:
        unknown = RAISE

    version = fields.Integer(strict=True, allow_none=True,
                             validate=validate.Range(min=1, max=MAX_VERSION))
    change_deadline = fields.AwareDateTime(format="iso", required=True)
    publish_at = fields.AwareDateTime(format="iso", required=True)
    go_live_date = fields.Date(required=True)
    empty_draft = fields.String(allow_none=True, validate=validate.OneOf(EMPTY_POLICIES))

    @validates_schema
    def _not_empty(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if self.partial and not data:
            raise ValidationError("give at least one field to change")


class LiveQuery(Schema):
    class Meta:
        unknown = RAISE

    on = fields.Date(required=True)


class FrozenLoadForm(Schema):
    class Meta:
        unknown = RAISE

    format = fields.String(load_default="mdd-csv", validate=validate.OneOf(FORMATS))
    mode = fields.String(load_default="replace", validate=validate.OneOf(MODES))
    entity = fields.String(validate=validate.Length(min=1, max=100))


# --- public -------------------------------------------------------------------------------

@public_bp.get("/releases")
@public_bp.response(200)
def list_releases() -> Any:
    return {"releases": [release_dict(r) for r in repository.releases(session())]}


@public_bp.get("/releases.ics")
@public_bp.response(200, {"type": "string"}, content_type="text/calendar")
def releases_ics() -> Response:
    text = ical.write(repository.releases(session()), request.host.split(":")[0] or "isd")
    return Response(text, mimetype="text/calendar",
                    headers={"Content-Disposition": 'inline; filename="isd-releases.ics"'})


@public_bp.get("/releases/<int(signed=True):release_id>")
@public_bp.response(200)
def show_release(release_id: int) -> Any:
    return release_dict(get_release(session(), release_id))


@public_bp.get("/releases/<int(signed=True):release_id>/preview")
@public_bp.arguments(PreviewQuery, location="query")
@public_bp.response(200, {"type": "object"}, content_type="application/json")
def preview(args: dict[str, Any], release_id: int) -> Response:
    """A frozen release's changes, in the shape of GET /deltas (from = the latest version)."""
    db = session()
    head, changes = calendar.preview(db, get_release(db, release_id),
                                     previous=args.get("detail") == "previous")
    return Response("".join(delta.as_json(head, changes)), mimetype="application/json")


@public_bp.get("/versions/live")
@public_bp.arguments(LiveQuery, location="query")
@public_bp.response(200, Manifest)
def version_live(args: dict[str, Any]) -> Any:
    """The version in force on a day (the newest gone live on or before it)."""
    version = repository.live_on(session(), args["on"])
    if version is None:
        raise ApiError(404, f"no published version has gone live by {args['on'].isoformat()}",
                       slug="no-such-version")
    return manifest(version)


# --- admin --------------------------------------------------------------------------------

protect(admin_bp)


@admin_bp.post("/releases")
@requires("publisher")
@admin_bp.arguments(ReleaseBody)
@admin_bp.response(201)
def create_release(body: dict[str, Any]) -> Any:
    row = calendar.create_release(
        uow(), change_deadline=body["change_deadline"], publish_at=body["publish_at"],
        go_live_date=body["go_live_date"], version=body.get("version"),
        empty_draft=body.get("empty_draft"), actor=caller().actor,
        organisation=caller().organisation)
    return release_dict(row), 201


@admin_bp.patch("/releases/<int(signed=True):release_id>")
@requires("publisher")
@admin_bp.arguments(ReleaseBody(partial=True))
@admin_bp.response(200)
def change_release(body: dict[str, Any], release_id: int) -> Any:
    row = calendar.update_release(uow(), release_id, body, actor=caller().actor,
                                  organisation=caller().organisation)
    return release_dict(row)


@admin_bp.delete("/releases/<int(signed=True):release_id>")
@admin_bp.response(200)
def cancel_release(release_id: int) -> Any:
    caller().require("publisher")
    row = calendar.cancel_release(uow(), release_id, actor=caller().actor,
                                  organisation=caller().organisation)
    return release_dict(row)


@admin_bp.post("/releases/frozen/loads")
@requires("publisher")
@admin_bp.arguments(FrozenLoadForm, location="form")
@admin_bp.response(201)
def load_into_frozen(form: dict[str, Any]) -> Any:
    """Override: load into the frozen release's set after its change deadline."""
    record = load_files(form, uploaded_files(), target="frozen")
    release = repository.load_release(session(), record.id)
    return {**load_summary(record), "release": release_dict(release) if release else None}, 201


@admin_bp.get("/loads/<int(signed=True):load_id>/release")
@admin_bp.response(200)
def release_of_load(load_id: int) -> Any:
    """Which release a load went to (the open one, or the frozen one by override)."""
    caller().require("loader", "publisher")
    release = repository.load_release(session(), load_id)
    return {"load": load_id, "release": release_dict(release) if release else None}


@admin_bp.get("/schedule")
@admin_bp.response(200)
def schedule() -> Any:
    """The scheduler's next runs and the outcome of past runs (failures with their reason)."""
    caller().require("publisher")
    db = session()
    return {"next_runs": steps.next_runs(db), "awaiting_approval": steps.awaiting_approval(db),
            "past_runs": steps.past_runs(db)}
