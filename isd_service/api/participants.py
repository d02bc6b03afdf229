"""For participants' software: the ISD data store's CSV files and the Atom feed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, request, stream_with_context
from marshmallow import fields, validate
from sqlalchemy import select

from isd_service import feed, isd_csv, release_calendar, snapshot
from isd_service.api.schemas import MAX_VERSION, Strict, parse
from isd_service.catalogue import Catalogue
from isd_service.errors import ApiError
from isd_service.extensions import session
from isd_service.models import Version
from isd_service.store import get_version, latest_version

bp = Blueprint("participants", __name__)


def published(number: int | None) -> Version:
    """Version ``number`` (None: the latest), or a 404 saying there is none."""
    db = session()
    version = latest_version(db) if number is None else get_version(db, number)
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
            db.close()  # the request's teardown has run before a stream ends

    response = Response(stream_with_context(generate()), mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class IsdQuery(Strict):
    filter = fields.String(required=True, validate=validate.Length(min=1, max=100))
    version = fields.Integer(validate=validate.Range(min=1, max=MAX_VERSION))


@bp.get("/ISD")
def get_isd_file() -> Response:
    """One entity, by its id or its MDD source name, in the ISD data store's CSV layout."""
    args: dict[str, Any] = parse(IsdQuery(), request.args)
    version = published(args.get("version"))
    catalogue = Catalogue.from_list(version.catalogue)
    wanted = args["filter"]
    entity = catalogue.get(wanted) or catalogue.by_source(wanted)
    if entity is None:
        raise ApiError(404, f"version {version.number} has no entity with the id or source "
                            f"{wanted!r}", slug="no-such-entity")
    previous = (get_version(session(), version.previous_version)
                if version.previous_version else None)
    is_changed = isd_csv.changed(entity.id, version.entities,
                                 previous.entities if previous else None)
    records = snapshot.iter_records(session(), entity, version.number)
    return stream(isd_csv.write(entity, version.number, is_changed, records), "text/csv",
                   f"{entity.id}_{version.number}.csv")


FEED_LENGTH = 50
PLANNED_STATES = ("planned", "frozen")


@bp.get("/v1/feed.atom")
def get_feed() -> Response:
    """Atom: the latest publications and the releases planned but not yet published."""
    db = session()
    base = request.url_root.rstrip("/")
    entries = []
    for v in db.scalars(select(Version).order_by(Version.number.desc()).limit(FEED_LENGTH)):
        go_live = v.go_live_date.isoformat() if v.go_live_date else "not set"
        entries.append(feed.Entry(
            id=f"urn:isd-service:version:{v.number}",
            title=f"Version {v.number} published (go-live {go_live})",
            updated=v.published_at, link=f"{base}/versions/{v.number}",
            summary=(f"Version {v.number}: {v.record_count} records, go-live date {go_live}, "
                     f"sha256 {v.sha256}. Manifest: {base}/api/v1/versions/{v.number}"),
            category="publication"))
    for r in release_calendar.list_releases(db):
        if r.state not in PLANNED_STATES:
            continue
        what = f"version {r.version}" if r.version else "the next version"
        entries.append(feed.Entry(
            id=f"urn:isd-service:release:{r.id}",
            title=f"Planned release {r.id}: {what}, publishes {feed.stamp(r.publish_at)}",
            updated=r.updated_at, link=f"{base}/releases",
            summary=(f"Planned release of {what} ({r.state}): change deadline "
                     f"{feed.stamp(r.change_deadline)}, publication "
                     f"{feed.stamp(r.publish_at)}, go-live date {r.go_live_date.isoformat()}."),
            category="planned-release"))
    body = feed.render(entries, self_url=f"{base}/api/v1/feed.atom", site_url=f"{base}/")
    return Response(body, mimetype="application/atom+xml")
