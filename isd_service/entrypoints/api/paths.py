"""Path-only URLs: every immutable public download under a path with no query string.

The same bytes, ETag and caching as the URLs with a query; what `isd mirror` writes under
the same paths (service_layer/mirror.py), so that any web server, bucket or CDN can serve
them. `versions/latest.json` and `versions/index.json` move with each publication.
"""

from __future__ import annotations

from flask import Response

from isd_service.adapters import repository
from isd_service.adapters.orm import Version
from isd_service.entrypoints.api.blueprint import Blueprint
from isd_service.entrypoints.api.caching import bytes_response, downloads, send
from isd_service.entrypoints.errors import ApiError
from isd_service.entrypoints.flask_db import session
from isd_service.service_layer import mirror
from isd_service.service_layer.downloads import MIMETYPES

bp = Blueprint("paths", __name__, description="Path-only URLs, as a static mirror serves them")
NOT_MODIFIED = "not modified (a conditional GET)"
PARTIAL = "partial content (a Range request)"
BEING_BUILT = ("the version's downloads are being built in the background: a problem "
               "(download-being-built) with Retry-After")
JSON = "application/json"


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


@bp.get("/versions/latest.json")
@bp.response(200, {}, content_type=JSON)
@bp.alt_response(304, description=NOT_MODIFIED)
def get_latest_json() -> Response:
    """The latest version's manifest (as /versions/latest); short-lived."""
    return bytes_response(mirror.latest_bytes(_latest()), JSON, immutable=False)


@bp.get("/versions/index.json")
@bp.response(200, {}, content_type=JSON)
@bp.alt_response(304, description=NOT_MODIFIED)
def get_index_json() -> Response:
    """`{"versions": [n, ...]}`: every published version, oldest first; short-lived."""
    numbers = repository.version_numbers(session())
    if not numbers:
        raise ApiError(404, "no version has been published yet", slug="no-such-version")
    return bytes_response(mirror.index_bytes(numbers), JSON, immutable=False)


@bp.get("/versions/<int:number>/manifest.json")
@bp.response(200, {}, content_type=JSON)
@bp.alt_response(304, description=NOT_MODIFIED)
@bp.alt_response(503, description=BEING_BUILT)
def get_manifest_json(number: int) -> Response:
    """The bytes of /versions/{n}: the manifest, its loads and its downloads."""
    version = _version(number)
    data = mirror.manifest_bytes(downloads(), version, repository.loads_of(session(), number))
    return bytes_response(data, JSON, immutable=True)


@bp.get("/versions/<int:number>/catalogue.json")
@bp.response(200, {}, content_type=JSON)
@bp.alt_response(304, description=NOT_MODIFIED)
def get_catalogue_json(number: int) -> Response:
    """`{"version", "entities"}`: the catalogue version n was published with."""
    return bytes_response(mirror.catalogue_bytes(_version(number)), JSON, immutable=True)


@bp.get("/versions/<int:number>/ranges/<string:entity_id>.json")
@bp.response(200, {}, content_type=JSON)
@bp.alt_response(304, description=NOT_MODIFIED)
def get_ranges_json(number: int, entity_id: str) -> Response:
    """An entity's key ranges in version n (hash rule 2): `{"version", "entity", "hash_rule",
    "records", "sha256", "ranges": [{"range", "records", "sha256"}]}`, from which its sha256
    composes (README, "Hashes"); 404 for a version published under rule 1."""
    data = mirror.ranges_bytes(session(), _version(number), entity_id)
    return bytes_response(data, JSON, immutable=True)


def _snapshot(number: int, fmt: str) -> Response:
    version = _version(number)
    built, name = downloads().snapshot(version, fmt, None)
    return send(built, mimetype=MIMETYPES[fmt], download_name=name, version=version,
                immutable=True, attachment=fmt == "csv")


@bp.get("/versions/<int:number>/snapshot.json")
@bp.response(200, {}, content_type=JSON)
@bp.alt_response(206, description=PARTIAL)
@bp.alt_response(304, description=NOT_MODIFIED)
@bp.alt_response(503, description=BEING_BUILT)
def get_snapshot_json(number: int) -> Response:
    """The whole snapshot as JSON (as /versions/{n}/snapshot?format=json)."""
    return _snapshot(number, "json")


@bp.get("/versions/<int:number>/snapshot.ndjson")
@bp.response(200, {}, content_type="application/x-ndjson")
@bp.alt_response(206, description=PARTIAL)
@bp.alt_response(304, description=NOT_MODIFIED)
@bp.alt_response(503, description=BEING_BUILT)
def get_snapshot_ndjson(number: int) -> Response:
    """The whole snapshot as NDJSON (as /versions/{n}/snapshot?format=ndjson)."""
    return _snapshot(number, "ndjson")


@bp.get("/versions/<int:number>/snapshot.csv.zip")
@bp.response(200, {}, content_type="application/zip")
@bp.alt_response(206, description=PARTIAL)
@bp.alt_response(304, description=NOT_MODIFIED)
@bp.alt_response(503, description=BEING_BUILT)
def get_snapshot_csv_zip(number: int) -> Response:
    """The whole snapshot as a zip of CSV files (as /versions/{n}/snapshot?format=csv)."""
    return _snapshot(number, "csv")


@bp.get("/deltas/<string:name>")
@bp.response(200, {}, content_type=JSON)
@bp.alt_response(200, schema={}, content_type="application/x-ndjson", success=True)
@bp.alt_response(206, description=PARTIAL)
@bp.alt_response(304, description=NOT_MODIFIED)
def get_delta_file(name: str) -> Response:
    """`{M}-{N}.json` or `.ndjson`: the net changes from version M (0: empty) to N, as
    /deltas?from=M&to=N gives them."""
    parsed = mirror.parse_delta_name(name)
    if parsed is None:
        raise ApiError(404, f"{name!r} is not a delta's name: give M-N.json or M-N.ndjson "
                            f"(M and N version numbers, M=0 for the empty base)",
                       slug="no-such-delta")
    m, n, fmt = parsed
    if m > n:
        raise ApiError(400, f"a delta goes forward: {m} is after {n}", slug="invalid-request")
    new = _version(n)
    old = _version(m) if m else None
    built, download_name = downloads().delta(old, new, None, fmt)
    return send(built, mimetype=MIMETYPES[fmt], download_name=download_name, version=new,
                immutable=True)
