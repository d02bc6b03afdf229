"""Admin API (bearer token): loads, the draft, publications and catalogue changes."""

from __future__ import annotations

from typing import Any

from flask import current_app, request

from isd_service.adapters import repository
from isd_service.adapters.orm import Load, PublicationRequest
from isd_service.domain.approval import APPROVE, REJECT
from isd_service.domain.catalogue import Catalogue, catalogue_changes
from isd_service.domain.formats import InputFile
from isd_service.domain.manifest import manifest
from isd_service.domain.moments import iso_utc
from isd_service.domain.ownership import restricted_organisation
from isd_service.entrypoints.api.blueprint import Blueprint
from isd_service.entrypoints.api.guard import caller, protect, requires
from isd_service.entrypoints.api.schemas import (
    DecisionBody,
    LoadForm,
    Manifest,
    PublicationBody,
    PublicationRequestOut,
    json_body,
)
from isd_service.entrypoints.errors import ApiError
from isd_service.entrypoints.flask_db import session, uow
from isd_service.service_layer import approvals, catalogue, drafts, relations
from isd_service.service_layer.calendar import release_dict

bp = Blueprint("admin", __name__,
               description="Loads, the draft, publications and catalogue changes")
# A catalogue change's body: a definition in the shape of GET /catalogue's entities (or
# fields), checked by the catalogue itself.
DEFINITION = {"required": True,
              "content": {"application/json": {"schema": {"type": "object"}}}}


protect(bp)


def load_summary(load: Load) -> dict[str, Any]:
    return {"id": load.id, "created_at": iso_utc(load.created_at), "actor": load.actor,
            "organisation": load.organisation, "format": load.format, "mode": load.mode,
            "files": load.files, "sha256": load.sha256, "inserted": load.inserted,
            "updated": load.updated, "deleted": load.deleted, "unchanged": load.unchanged,
            "entities": load.entities, "version": load.version}


def uploaded_files() -> list[InputFile]:
    """The files of a multipart load request (422 if it has none)."""
    files = [InputFile(name=f.filename or "upload", data=f.read())
             for name in request.files for f in request.files.getlist(name)]
    if not files:
        raise ApiError(422, "no file in the request: send one or more files",
                       slug="invalid-input")
    return files


def load_files(form: dict[str, Any], files: list[InputFile], target: str = "open") -> Load:
    """Load the request's files as the caller, under the ownership policy."""
    who = caller()
    return drafts.load(uow(), files=files, fmt=form["format"], mode=form["mode"],
                       entity_id=form.get("entity"), actor=who.actor,
                       organisation=who.organisation, target=target,
                       restricted_to=restricted_organisation(
                           who, current_app.config["ADMIN_ORG"]),
                       ownership_fields=current_app.config["OWNERSHIP"])


@bp.post("/loads")
@requires("loader", "publisher")
@bp.arguments(LoadForm, location="form")
@bp.response(201)
def post_load(form: dict[str, Any]) -> Any:
    record = load_files(form, uploaded_files())
    return {**load_summary(record), **release_of(record)}, 201


def release_of(record: Load) -> dict[str, Any]:
    """Say which release a load went to, and why when a frozen release is skipped."""
    db = session()
    release = repository.load_release(db, record.id)
    frozen = repository.frozen_release(db)
    out: dict[str, Any] = {"release": release_dict(release) if release else None}
    if frozen is not None and (release is None or release.id != frozen.id):
        out["note"] = (f"release {frozen.id} (version {frozen.version}) is frozen since its "
                       "change-request deadline; this load goes to the following release")
    return out


@bp.get("/loads")
@bp.response(200)
def list_loads() -> Any:
    caller().require("loader", "publisher")
    return {"loads": [load_summary(ld) for ld in repository.recent_loads(session())]}


@bp.get("/draft")
@bp.response(200)
def get_draft() -> Any:
    """What the next publication would change, per entity, and the catalogue changes."""
    caller().require("loader", "publisher")
    db = session()
    latest = repository.latest_version(db)
    working = repository.working_catalogue(db)
    old = Catalogue.from_list(latest.catalogue) if latest else Catalogue([])
    entities = repository.draft_summary(db)
    changes = catalogue_changes(old, working)
    changed = set(entities) | {c["entity"] for c in changes}
    frozen = repository.frozen_release(db)
    if frozen is not None:
        changed |= repository.staged_entities(db, frozen.id)
    return {
        # Records that would refuse the publication, as it checks them.
        "relations": relations.draft_review(db, working, changed if latest else None),
        "base_version": latest.number if latest else None,
        "next_version": latest.number + 1 if latest else None,
        "entities": entities,
        "catalogue": changes,
        "empty": not entities and not changes and latest is not None,
    }


@bp.delete("/draft")
@bp.response(200)
def delete_draft() -> Any:
    caller().require("publisher")
    return {"discarded": drafts.discard(uow(), actor=caller().actor,
                                        organisation=caller().organisation)}


@bp.post("/publications")
@requires("publisher")
@bp.arguments(PublicationBody, required=False)
@bp.response(201, Manifest)
@bp.alt_response(202, schema=PublicationRequestOut,
                 description="ISD_PUBLICATION_APPROVALS > 0: a publication request that "
                             "other publishers approve")
def post_publication(body: dict[str, Any]) -> Any:
    """Publish the draft; with four eyes, ask for approval instead (202)."""
    who = caller()
    out = approvals.request_or_publish(uow(), actor=who.actor, holder=who.holder,
                                       organisation=who.organisation,
                                       version=body.get("version"),
                                       go_live_date=body.get("go_live_date"),
                                       force=body["force"])
    if isinstance(out, PublicationRequest):
        return approvals.summary(out), 202
    return manifest(out), 201


@bp.get("/publication-requests")
@bp.response(200)
def list_publication_requests() -> Any:
    """Publication requests, newest first."""
    caller().require("publisher")
    return {"requests": [approvals.summary(r)
                         for r in approvals.list_requests(session())]}


@bp.get("/publication-requests/<int:request_id>")
@bp.response(200, PublicationRequestOut)
def get_publication_request(request_id: int) -> Any:
    caller().require("publisher")
    return approvals.summary(approvals.get_request(session(), request_id))


def _decide(request_id: int, decision: str, body: dict[str, Any]) -> Any:
    who = caller()
    row, version = approvals.decide(uow(), request_id, decision=decision, actor=who.actor,
                                    holder=who.holder, organisation=who.organisation,
                                    comment=body.get("comment"))
    return {**approvals.summary(row), "manifest": manifest(version) if version else None}, 201


@bp.post("/publication-requests/<int:request_id>/approvals")
@requires("publisher")
@bp.arguments(DecisionBody, required=False)
@bp.response(201, PublicationRequestOut)
def post_approval(body: dict[str, Any], request_id: int) -> Any:
    """Approve a request (not your own, nor one carrying your loads); the last approval
    publishes, and the answer carries the manifest."""
    return _decide(request_id, APPROVE, body)


@bp.post("/publication-requests/<int:request_id>/rejections")
@requires("publisher")
@bp.arguments(DecisionBody, required=False)
@bp.response(201, PublicationRequestOut)
def post_rejection(body: dict[str, Any], request_id: int) -> Any:
    """Reject a request (not your own, nor one carrying your loads)."""
    return _decide(request_id, REJECT, body)


@bp.post("/catalogue/entities")
@bp.doc(requestBody=DEFINITION)
@bp.response(201)
def post_entity() -> Any:
    """Add a new entity (definition in the shape of GET /catalogue's entities)."""
    caller().require("admin")
    entity = catalogue.add_entity(uow(), json_body(), actor=caller().actor,
                                  organisation=caller().organisation)
    return entity.to_dict(), 201


@bp.post("/catalogue/entities/<string:entity_id>/fields")
@bp.doc(requestBody=DEFINITION)
@bp.response(201)
def post_field(entity_id: str) -> Any:
    """Add a new data item to an entity; it goes out with the next version."""
    caller().require("admin")
    new = catalogue.add_field(uow(), entity_id, json_body(), actor=caller().actor,
                              organisation=caller().organisation)
    current_app.logger.info("field %s added to %s", new.id, entity_id)
    return new.to_dict(), 201


@bp.patch("/catalogue/entities/<string:entity_id>/fields/<string:field_id>")
@bp.doc(requestBody={"required": True, "content": {"application/json": {"schema": {
    "type": "object", "properties": {"name": {"type": "string"},
                                     "description": {"type": "string"}}}}}})
@bp.response(200)
def patch_field(entity_id: str, field_id: str) -> Any:
    """Give a data item a new name (its header in files) or description."""
    caller().require("admin")
    changed = catalogue.change_field(uow(), entity_id, field_id, json_body(),
                                     actor=caller().actor, organisation=caller().organisation)
    return changed.to_dict()


@bp.put("/catalogue/entities/<string:entity_id>/foreign-keys")
@bp.doc(requestBody={"required": True, "content": {"application/json": {"schema": {
    "type": "array", "items": {"type": "object"}}}}})
@bp.response(200)
def put_foreign_keys(entity_id: str) -> Any:
    """Declare an entity's relations (replacing its own; [] removes them): a list of
    {"fields": [...], "reference": {"entity", "fields": [...]}}. They go out with the next
    version, whose publication checks them over the whole version."""
    caller().require("admin")
    changed = catalogue.set_relations(uow(), entity_id, json_body(), actor=caller().actor,
                                      organisation=caller().organisation)
    return changed.to_dict()
