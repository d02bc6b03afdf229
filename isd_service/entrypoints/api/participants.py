"""For participants' software: the ISD data store's CSV files and the Atom feed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from flask import Response, request, stream_with_context
from marshmallow import fields, validate

from isd_service.adapters import repository
from isd_service.adapters.orm import Version
from isd_service.domain.catalogue import Catalogue, EntityDef
from isd_service.domain.formats import atom, isd_csv
from isd_service.domain.lifecycle import SCHEDULED, ReleaseState
from isd_service.domain.snapshot import records
from isd_service.entrypoints.api.blueprint import Blueprint
from isd_service.entrypoints.api.schemas import MAX_VERSION, Strict
from isd_service.entrypoints.errors import ApiError
from isd_service.entrypoints.flask_db import session

bp = Blueprint("participants", __name__,
               description="The ISD data store's CSV files and the Atom feed")


def published(number: int | None) -> Version:
    """Version ``number`` (None: the latest), or a 404 saying there is none."""
    db = session()
    version = (repository.latest_version(db) if number is None
               else repository.get_version(db, number))
    if version is None:
        detail = ("no version has been published yet" if number is None
                  else f"version {number} has not been published")
        raise ApiError(404, detail, slug="no-such-version")
    return version


def stream(chunks: Iterator[str], mimetype: str, filename: str) -> Response:
    """Stream text chunks; the request's session is closed when the last one has gone out."""
    db = session()

    def generate() -> Iterator[str]:
        try:
            yield from chunks
        finally:
            # The request's teardown has closed its unit of work before the stream ends, and
            # the chunks' reads opened the session again: close it once they are done.
            db.close()

    response = Response(stream_with_context(generate()), mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class IsdQuery(Strict):
    filter = fields.String(required=True, validate=validate.Length(min=1, max=100))
    version = fields.Integer(validate=validate.Range(min=1, max=MAX_VERSION))


@bp.get("/ISD")
@bp.arguments(IsdQuery, location="query")
@bp.response(200, {"type": "string"}, content_type="text/csv")
def get_isd_file(args: dict[str, Any]) -> Response:
    """One entity, by its id or its MDD source name, in the ISD data store's CSV layout."""
    version = published(args.get("version"))
    catalogue = Catalogue.from_list(version.catalogue)
    wanted = args["filter"]
    entity = catalogue.get(wanted) or catalogue.by_source(wanted)
    if entity is None:
        raise ApiError(404, f"version {version.number} has no entity with the id or source "
                            f"{wanted!r}", slug="no-such-entity")
    db = session()
    previous = (repository.get_version(db, version.previous_version)
                if version.previous_version else None)
    is_changed = isd_csv.changed(entity.id, version.entities,
                                 previous.entities if previous else None,
                                 differs=_differs(previous, version, entity))
    rows = records(entity, repository.snapshot_data(db, entity.id, version.number))
    return stream(isd_csv.write(entity, version.number, is_changed, rows), "text/csv",
                  f"{entity.id}_{version.number}.csv")


FEED_LENGTH = 50


@bp.get("/v1/feed.atom")
@bp.response(200, {"type": "string"}, content_type="application/atom+xml")
def get_feed() -> Response:
    """Atom: the latest publications and the releases planned but not yet published."""
    db = session()
    base = request.url_root.rstrip("/")
    entries = []
    for v in repository.versions_page(db, FEED_LENGTH):
        go_live = v.go_live_date.isoformat() if v.go_live_date else "not set"
        entries.append(atom.Entry(
            id=f"urn:isd-service:version:{v.number}",
            title=f"Version {v.number} published (go-live {go_live})",
            updated=v.published_at, link=f"{base}/versions/{v.number}",
            summary=(f"Version {v.number}: {v.record_count} records, go-live date {go_live}, "
                     f"sha256 {v.sha256}. Manifest: {base}/api/v1/versions/{v.number}"),
            category="publication"))
    for r in repository.releases(db, (*SCHEDULED, ReleaseState.AWAITING_APPROVAL)):
        what = f"version {r.version}" if r.version else "the next version"
        when = (f"awaits approval since {atom.stamp(r.publish_at)}"
                if r.state == ReleaseState.AWAITING_APPROVAL
                else f"publishes {atom.stamp(r.publish_at)}")
        entries.append(atom.Entry(
            id=f"urn:isd-service:release:{r.id}",
            title=f"Planned release {r.id}: {what}, {when}",
            updated=r.updated_at, link=f"{base}/releases",
            summary=(f"Planned release of {what} ({r.state}): change deadline "
                     f"{atom.stamp(r.change_deadline)}, publication "
                     f"{atom.stamp(r.publish_at)}, go-live date {r.go_live_date.isoformat()}."),
            category="planned-release"))
    body = atom.render(entries, self_url=f"{base}/api/v1/feed.atom", site_url=f"{base}/")
    return Response(body, mimetype="application/atom+xml")


def _differs(previous: Version | None, version: Version,
             entity: EntityDef) -> Callable[[], bool] | None:
    """When the two versions' hashes follow different rules they cannot be compared: the
    entity's definition and its rows tell whether it changed."""
    if previous is None or previous.hash_rule == version.hash_rule:
        return None

    def differs() -> bool:
        return (Catalogue.from_list(previous.catalogue).get(entity.id) != entity
                or repository.rows_changed(session(), entity.id, previous.number,
                                           version.number))
    return differs
