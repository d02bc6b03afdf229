"""Public reads, no login: catalogue, versions, snapshots, MDD files, deltas, records."""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Response, current_app, request, url_for

from isd_service.adapters import repository
from isd_service.adapters.orm import Version
from isd_service.adapters.signing import public_key_pem, sign
from isd_service.domain import cursors
from isd_service.domain.catalogue import Catalogue, EntityDef
from isd_service.domain.formats import dcat
from isd_service.domain.manifest import manifest
from isd_service.domain.record_query import RecordQuery, parse_filters
from isd_service.domain.records import projected_json
from isd_service.domain.snapshot import entities_of
from isd_service.entrypoints.api.blueprint import Blueprint
from isd_service.entrypoints.api.caching import (
    bytes_response,
    downloads,
    json_bytes,
    json_response,
    send,
)
from isd_service.entrypoints.api.schemas import (
    MAX_VERSION,
    CatalogueOut,
    CatalogueQuery,
    DeltaQuery,
    Manifest,
    PageQuery,
    RecordPage,
    RecordsQuery,
    SnapshotQuery,
    VersionPage,
)
from isd_service.entrypoints.errors import ApiError
from isd_service.entrypoints.flask_db import session
from isd_service.service_layer.download_builds import DownloadsBeingBuilt
from isd_service.service_layer.downloads import (
    LICENCE,
    MIMETYPES,
    Downloads,
    version_manifest,
)

bp = Blueprint("public", __name__, description="Public reads, no login")
# What the answers of the downloads may also be (their ETag and Range handling)
NOT_MODIFIED = "not modified (a conditional GET)"
PARTIAL = "partial content (a Range request)"
BEING_BUILT = ("the version's downloads are being built in the background: a problem "
               "(download-being-built) with Retry-After")


def _version(number: int) -> Version:
    version = repository.get_version(session(), number)
    if version is None:
        raise ApiError(404, f"version {number} has not been published", slug="no-such-version")
    return version


def _latest() -> Version:
    version = repository.latest_version(session())
    if version is None:
        raise ApiError(404, "no version has been published yet", slug="no-such-version")
    return version


@bp.get("/catalogue")
@bp.arguments(CatalogueQuery, location="query")
@bp.response(200, CatalogueOut)
def get_catalogue(args: dict[str, Any]) -> Any:
    """The working catalogue, or with ?version=N the one version N was published with."""
    if "version" in args:
        version = _version(args["version"])
        return {"version": version.number, "entities": version.catalogue}
    return {"version": None,
            "entities": repository.working_catalogue(session()).to_list()}


@bp.get("/catalog.jsonld")
@bp.response(200, {}, content_type="application/ld+json")
@bp.alt_response(304, description=NOT_MODIFIED)
def get_dcat_catalog() -> Response:
    """Every version as a DCAT-AP style catalogue (JSON-LD, context inline): a dataset
    series, a dataset per version, a distribution per download with its SHA-256."""
    db = session()
    files = downloads()
    published = [dcat.Published(v.number, v.published_at, v.go_live_date, _entries(files, v))
                 for v in repository.versions_page(db, MAX_VERSION)]
    base = (current_app.config.get("PUBLIC_URL") or request.url_root).rstrip("/")
    document = dcat.catalog(published, base=base,
                            publisher=current_app.config["PUBLISHER_NAME"],
                            licence=LICENCE["title"], mimetypes=MIMETYPES)
    return bytes_response(json_bytes(document), "application/ld+json", immutable=False)


def _entries(files: Downloads, version: Version) -> list[dict[str, Any]]:
    """A version's listed downloads; none yet while they are being built (the catalogue
    moves: it lists them within a minute of their build)."""
    try:
        return files.entries(version)
    except DownloadsBeingBuilt:
        return []


@bp.get("/versions")
@bp.arguments(PageQuery, location="query")
@bp.response(200, VersionPage)
@bp.alt_response(304, description=NOT_MODIFIED)
def list_versions(args: dict[str, Any]) -> Any:
    """Published versions, newest first; `cursor` is the number to continue below."""
    limit = args.get("limit", 100)
    below = None
    if "cursor" in args:
        cursor = args["cursor"]
        if not re.fullmatch(r"[0-9]{1,10}", cursor) or int(cursor) > MAX_VERSION:
            raise ApiError(400, "cursor must be a version number", slug="invalid-request")
        below = int(cursor)
    rows = repository.versions_page(session(), limit + 1, below)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = str(rows[-1].number) if more and rows else None
    return json_response({
        "versions": [manifest(v) for v in rows],
        "next_cursor": next_cursor,
        "next": url_for(".list_versions", limit=limit, cursor=next_cursor)
        if next_cursor else None,
    }, immutable=False)


@bp.get("/versions/latest")
@bp.response(200, Manifest)
@bp.alt_response(304, description=NOT_MODIFIED)
def get_latest() -> Any:
    return json_response(manifest(_latest()), immutable=False)


@bp.get("/versions/<int(signed=True):number>")
@bp.response(200, Manifest)
@bp.alt_response(304, description=NOT_MODIFIED)
@bp.alt_response(503, description=BEING_BUILT)
def get_manifest(number: int) -> Any:
    return bytes_response(_manifest_bytes(number), "application/json", immutable=True)


def _manifest_bytes(number: int) -> bytes:
    version = _version(number)
    loads = repository.loads_of(session(), number)
    return json_bytes(version_manifest(downloads(), version, loads))


@bp.get("/versions/<int(signed=True):number>/manifest.sig")
@bp.response(200, {"type": "string"}, content_type="text/plain")
@bp.alt_response(304, description=NOT_MODIFIED)
@bp.alt_response(503, description=BEING_BUILT)
def get_manifest_signature(number: int) -> Response:
    """The Ed25519 signature (base64) of the exact bytes of /versions/{n}."""
    data = sign(_signing_key_file(), _manifest_bytes(number))
    return bytes_response(data.encode("ascii"), "text/plain", immutable=True)


@bp.get("/signing-key")
@bp.response(200, {"type": "string"}, content_type="application/x-pem-file")
@bp.alt_response(304, description=NOT_MODIFIED)
def get_signing_key() -> Response:
    """The public key that manifests are signed with (PEM)."""
    return bytes_response(public_key_pem(_signing_key_file()), "application/x-pem-file",
                          immutable=False)


def _signing_key_file() -> str:
    name = current_app.config.get("SIGNING_KEY_FILE")
    if not name:
        raise ApiError(404, "this service does not sign its manifests", slug="not-signed")
    return str(name)


@bp.get("/versions/<int(signed=True):number>/SHA256SUMS")
@bp.response(200, {"type": "string"}, content_type="text/plain")
@bp.alt_response(206, description=PARTIAL)
@bp.alt_response(304, description=NOT_MODIFIED)
@bp.alt_response(503, description=BEING_BUILT)
def get_sha256sums(number: int) -> Response:
    """The hashes of the manifest's downloads, in the format `sha256sum -c` reads."""
    version = _version(number)
    return send(downloads().sums(version), mimetype="text/plain",
                download_name="SHA256SUMS", version=version, immutable=True)


@bp.get("/versions/<int(signed=True):number>/snapshot")
@bp.arguments(SnapshotQuery, location="query")
@bp.response(200, {}, content_type="application/json")
@bp.alt_response(200, schema={}, content_type="application/x-ndjson", success=True)
@bp.alt_response(200, schema={}, content_type="application/zip", success=True)
@bp.alt_response(206, description=PARTIAL)
@bp.alt_response(304, description=NOT_MODIFIED)
@bp.alt_response(503, description=BEING_BUILT)
def get_snapshot(args: dict[str, Any], number: int) -> Response:
    version = _version(number)
    entity = args.get("entity")
    try:
        entities_of(version, entity)
    except LookupError as exc:
        raise ApiError(404, str(exc), slug="no-such-entity") from None
    fmt = args["format"]
    built, name = downloads().snapshot(version, fmt, entity)
    return send(built, mimetype=MIMETYPES[fmt], download_name=name, version=version,
                immutable=True, attachment=fmt == "csv")


@bp.get("/versions/<int(signed=True):number>/mdd.zip")
@bp.response(200, {}, content_type="application/zip")
@bp.alt_response(206, description=PARTIAL)
@bp.alt_response(304, description=NOT_MODIFIED)
@bp.alt_response(503, description=BEING_BUILT)
def get_mdd_zip(number: int) -> Response:
    """Every entity from an MDD file, as the portal's zip of `<Stem>_<N>.csv` files."""
    version = _version(number)
    built, name = downloads().mdd_zip(version)
    return send(built, mimetype="application/zip", download_name=name, version=version,
                immutable=True, attachment=True)


@bp.get("/versions/<int(signed=True):number>/datapackage.json")
@bp.response(200, {}, content_type="application/json")
@bp.alt_response(206, description=PARTIAL)
@bp.alt_response(304, description=NOT_MODIFIED)
@bp.alt_response(503, description=BEING_BUILT)
def get_datapackage(number: int) -> Response:
    """The version as a Frictionless Data Package: one resource per entity (its MDD CSV
    file, with bytes and hash), a Table Schema with primaryKey and foreignKeys."""
    version = _version(number)
    built, name = downloads().datapackage(version)
    return send(built, mimetype="application/json", download_name=name, version=version,
                immutable=True)


@bp.get("/versions/<int(signed=True):number>/mdd/<string:name>")
@bp.response(200, {}, content_type="text/csv")
@bp.alt_response(206, description=PARTIAL)
@bp.alt_response(304, description=NOT_MODIFIED)
@bp.alt_response(503, description=BEING_BUILT)
def get_mdd_file(number: int, name: str) -> Response:
    """One entity in the Elexon MDD CSV layout: `<Stem>.csv` (or `<Stem>_<N>.csv`)."""
    version = _version(number)
    catalogue = Catalogue.from_list(version.catalogue)
    stem = name[:-4] if name.lower().endswith(".csv") else name
    entity = catalogue.by_source(stem)
    if entity is None and stem.endswith(f"_{number}"):
        entity = catalogue.by_source(stem[: -len(f"_{number}")])
    if entity is None:
        raise ApiError(404, f"version {number} has no entity with the MDD name {stem!r}",
                       slug="no-such-entity")
    built, filename = downloads().mdd_file(version, entity)
    return send(built, mimetype="text/csv", download_name=filename, version=version,
                immutable=True, attachment=True)


@bp.get("/deltas")
@bp.arguments(DeltaQuery, location="query")
@bp.response(200, {}, content_type="application/json")
@bp.alt_response(200, schema={}, content_type="application/x-ndjson", success=True)
@bp.alt_response(206, description=PARTIAL)
@bp.alt_response(304, description=NOT_MODIFIED)
def get_delta(args: dict[str, Any]) -> Response:
    """Net changes from version `from` (0: empty) to `to` (default: latest)."""
    new = _version(args["to"]) if "to" in args else _latest()
    old = _version(args["from_"]) if args["from_"] else None
    if old is not None and old.number > new.number:
        raise ApiError(400, f"from ({old.number}) must not be after to ({new.number})",
                       slug="invalid-request")
    entity = args.get("entity")
    if entity is not None and not any(entity in Catalogue.from_list(v.catalogue)
                                      for v in (old, new) if v is not None):
        raise ApiError(404, f"entity {entity!r} is in neither version", slug="no-such-entity")
    # Both ends named: the delta never changes. Without `to` it follows the latest version.
    built, name = downloads().delta(old, new, entity, args["format"],
                                    previous=args.get("detail") == "previous")
    return send(built, mimetype=MIMETYPES[args["format"]], download_name=name, version=new,
                immutable="to" in args)


@bp.get("/entities/<string:entity_id>/records")
@bp.arguments(RecordsQuery, location="query")
@bp.response(200, RecordPage)
def get_records(args: dict[str, Any], entity_id: str) -> Any:
    """Records of an entity in a version, filtered by field values and validity date.

    Any other parameter is a field of the entity and its value; a field repeated matches
    any of its values; an empty value matches records without one.
    """
    known = {"version", "effective_on", "limit", "cursor"}
    found = repository.published_catalogue(session(), args.get("version"))
    if found is None:  # the same problems as _version and _latest
        raise ApiError(404, f"version {args['version']} has not been published"
                       if "version" in args else "no version has been published yet",
                       slug="no-such-version")
    number, catalogue = found
    entity = catalogue.get(entity_id)
    if entity is None:
        raise ApiError(404, f"entity {entity_id!r} is not in version {number}",
                       slug="no-such-entity")
    equals, errors = parse_filters(entity, [(k, v) for k, v in request.args.items(multi=True)
                                            if k not in known])
    if errors:
        raise ApiError(400, "the request's query is not valid", slug="invalid-request",
                       errors=errors)
    on = args.get("effective_on")
    if on is not None and entity.effective_from is None:
        raise ApiError(400, f"{entity_id} has no effective dates to filter on",
                       slug="invalid-request")
    limit = args.get("limit", 100)
    after = _cursor(args["cursor"]) if "cursor" in args else None
    rows = repository.records_page(
        session(), entity, number, RecordQuery(equals, on), after_key=after,
        limit=limit, budget_ms=current_app.config["RECORD_QUERY_BUDGET_MS"])
    cursor = cursors.encode(rows[limit - 1][0]) if len(rows) > limit else None
    return _record_page(entity, number, [data for _key, data in rows[:limit]], cursor)


def _record_page(entity: EntityDef, version: int, data: list[str], cursor: str | None
                 ) -> Response:
    """The page as the app's JSON encoder would write it (catalogue order, compact, ASCII),
    written from the stored texts: no dictionaries built, then encoded again, per record."""
    write = projected_json(entity)
    text = (f'{{"entity":{json.dumps(entity.id)},"version":{version},'
            f'"records":[{",".join([write(d) for d in data])}],'
            f'"next_cursor":{json.dumps(cursor)}}}\n')
    if not text.isascii() or "\x7f" in text:
        text = NON_ASCII.sub(_json_escape, text)
    return current_app.response_class(text, mimetype="application/json")


# What json.dumps' ensure_ascii (the app's encoder) writes as escapes besides what
# projected_json does: DEL and everything outside ASCII.
NON_ASCII = re.compile(r"[^\x00-\x7e]")


def _json_escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # a surrogate pair
    return f"\\u{0xD800 | code >> 10:04x}\\u{0xDC00 | code & 0x3FF:04x}"


def _cursor(cursor: str) -> str:
    try:
        return cursors.decode_key(cursor)
    except ValueError:
        raise ApiError(400, "cursor is not one this service gave out",
                       slug="invalid-request") from None
