"""Admin API (bearer token): loads, the draft, publications and catalogue changes."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, request
from sqlalchemy import select

from isd_service import audit, catalogue_db, drafts, releases
from isd_service.api.guard import caller, protect
from isd_service.api.schemas import LoadForm, PublicationBody, json_body, parse
from isd_service.catalogue import Catalogue, catalogue_changes
from isd_service.errors import ApiError
from isd_service.extensions import session
from isd_service.formats import InputFile
from isd_service.models import Load
from isd_service.release_calendar import release_dict
from isd_service.releases import iso_utc
from isd_service.store import frozen_release, latest_version, load_release

bp = Blueprint("admin", __name__)


protect(bp)


def load_summary(load: Load) -> dict[str, Any]:
    return {"id": load.id, "created_at": iso_utc(load.created_at), "actor": load.actor,
            "organisation": load.organisation, "format": load.format, "mode": load.mode,
            "files": load.files, "sha256": load.sha256, "inserted": load.inserted,
            "updated": load.updated, "deleted": load.deleted, "unchanged": load.unchanged,
            "entities": load.entities, "version": load.version}


@bp.post("/loads")
def post_load() -> Any:
    caller().require("loader", "publisher")
    if not request.mimetype.startswith("multipart/form-data"):
        raise ApiError(415, "send the files as multipart/form-data", slug="unsupported-media-type")
    form = parse(LoadForm(), request.form, status=422, what="form")
    uploads = [f for name in request.files for f in request.files.getlist(name)]
    files = [InputFile(name=f.filename or "upload", data=f.read()) for f in uploads]
    if not files:
        raise ApiError(422, "no file in the request: send one or more files", slug="invalid-input")
    record = drafts.load(session(), files=files, fmt=form["format"], mode=form["mode"],
                         entity_id=form.get("entity"), actor=caller().actor,
                         organisation=caller().organisation)
    return {**load_summary(record), **release_of(record)}, 201


def release_of(record: Load) -> dict[str, Any]:
    """Say which release a load went to, and why when a frozen release is skipped."""
    db = session()
    release = load_release(db, record.id)
    frozen = frozen_release(db)
    out: dict[str, Any] = {"release": release_dict(release) if release else None}
    if frozen is not None and (release is None or release.id != frozen.id):
        out["note"] = (f"release {frozen.id} (version {frozen.version}) is frozen since its "
                       "change-request deadline; this load goes to the following release")
    return out


@bp.get("/loads")
def list_loads() -> Any:
    caller().require("loader", "publisher")
    rows = session().scalars(select(Load).order_by(Load.id.desc()).limit(200))
    return {"loads": [load_summary(ld) for ld in rows]}


@bp.get("/draft")
def get_draft() -> Any:
    """What the next publication would change, per entity, and the catalogue changes."""
    caller().require("loader", "publisher")
    db = session()
    latest = latest_version(db)
    catalogue = catalogue_db.working_catalogue(db)
    old = Catalogue.from_list(latest.catalogue) if latest else Catalogue([])
    entities = drafts.draft_summary(db)
    changes = catalogue_changes(old, catalogue)
    return {
        "base_version": latest.number if latest else None,
        "next_version": latest.number + 1 if latest else None,
        "entities": entities,
        "catalogue": changes,
        "empty": not entities and not changes and latest is not None,
    }


@bp.delete("/draft")
def delete_draft() -> Any:
    caller().require("publisher")
    return {"discarded": audit.discard_draft(session(), actor=caller().actor,
                                             organisation=caller().organisation)}


@bp.post("/publications")
def post_publication() -> Any:
    caller().require("publisher")
    body = parse(PublicationBody(), json_body() if request.content_length else {},
                 status=422, what="body")
    version = releases.publish(session(), actor=caller().actor,
                               organisation=caller().organisation,
                               version=body.get("version"),
                               go_live_date=body.get("go_live_date"), force=body["force"])
    return releases.manifest(version), 201


@bp.post("/catalogue/entities")
def post_entity() -> Any:
    """Add a new entity (definition in the shape of GET /catalogue's entities)."""
    caller().require("admin")
    db = session()
    body = json_body()
    drafts.lock_draft(db)
    entity = catalogue_db.add_entity(db, body)
    audit.record(db, action="catalogue.add_entity", actor=caller().actor,
                 organisation=caller().organisation, subject=entity.id,
                 details=entity.to_dict())
    db.commit()
    return entity.to_dict(), 201


@bp.post("/catalogue/entities/<string:entity_id>/fields")
def post_field(entity_id: str) -> Any:
    """Add a new data item to an entity; it goes out with the next version."""
    caller().require("admin")
    db = session()
    body = json_body()
    drafts.lock_draft(db)
    try:
        new = catalogue_db.add_field(db, entity_id, body)
    except LookupError as exc:
        db.rollback()
        raise ApiError(404, str(exc), slug="no-such-entity") from None
    audit.record(db, action="catalogue.add_field", actor=caller().actor,
                 organisation=caller().organisation, subject=f"{entity_id}.{new.id}",
                 details={"entity": entity_id, "field": new.to_dict()})
    db.commit()
    current_app.logger.info("field %s added to %s", new.id, entity_id)
    return new.to_dict(), 201
