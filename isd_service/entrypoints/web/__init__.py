"""Server-rendered pages for people: versions, entities, one record's history, diffs and
the release calendar. No JavaScript; one small stylesheet served by the service itself."""

from __future__ import annotations

from collections import Counter
from typing import Any

from flask import Blueprint, Flask, current_app, render_template, request, url_for
from werkzeug.wrappers import Response

from isd_service.adapters import repository
from isd_service.adapters.orm import Version
from isd_service.domain import cursors, delta
from isd_service.domain.catalogue import Catalogue, EntityDef
from isd_service.domain.dictionary import catalogue_history
from isd_service.domain.history import introduced_in, record_history
from isd_service.domain.lifecycle import SCHEDULED
from isd_service.domain.manifest import manifest
from isd_service.domain.moments import iso_utc
from isd_service.domain.record_query import QueryTooExpensive, RecordQuery, parse_filters
from isd_service.domain.records import KEY_SEPARATOR, decode, key_text, project
from isd_service.domain.validation import coerce
from isd_service.entrypoints.api.caching import downloads
from isd_service.entrypoints.flask_db import session
from isd_service.service_layer.download_builds import DownloadsBeingBuilt

bp = Blueprint("web", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static")

PAGE_SIZE = 50
DIFF_LIMIT = 500


class PageError(Exception):
    """A page that cannot be shown: rendered as an HTML error page with its status."""

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


@bp.errorhandler(PageError)
def _page_error(exc: PageError) -> tuple[str, int]:
    return render_template("web/error.html", status=exc.status, message=str(exc)), exc.status


def _version(number: Any) -> Version:
    try:
        n = int(number)
    except (TypeError, ValueError):
        raise PageError(400, f"{number!r} is not a version number") from None
    version = repository.get_version(session(), n)
    if version is None:
        raise PageError(404, f"version {n} has not been published")
    return version


def _entity(version: Version, entity_id: str) -> EntityDef:
    entity = repository.catalogue_of(version).get(entity_id)
    if entity is None:
        raise PageError(404, f"version {version.number} has no entity {entity_id!r}")
    return entity


def _upcoming() -> list[Any]:
    return repository.releases(session(), SCHEDULED)


@bp.app_template_filter("when")
def _when(moment: Any) -> str:
    """A time to the minute in UTC, from a datetime or the API's ISO text."""
    if not moment:
        return ""
    text = moment if isinstance(moment, str) else iso_utc(moment)
    return text.replace("T", " ")[:16] + " UTC"


@bp.get("/")
def home() -> str:
    latest = repository.latest_version(session())
    upcoming = _upcoming()
    return render_template("web/home.html", latest=manifest(latest) if latest else None,
                           next_release=upcoming[0] if upcoming else None,
                           base=request.url_root.rstrip("/"))


@bp.get("/versions")
def versions() -> str:
    rows = repository.versions_page(session(), 500)
    return render_template("web/versions.html", versions=[manifest(v) for v in rows])


@bp.get("/versions/<int:number>")
def version_page(number: int) -> str:
    version = _version(number)
    catalogue = Catalogue.from_list(version.catalogue)
    try:
        files, building = downloads().entries(version), None
    except DownloadsBeingBuilt as exc:  # the page, without the files' hashes for now
        files, building = [], str(exc)
    return render_template("web/version.html", m=manifest(version),
                           entities=list(catalogue.entities.values()),
                           files=files, building=building)


@bp.get("/catalogue")
def dictionary_latest() -> str:
    """The data dictionary of the latest version (the working catalogue before any)."""
    latest = repository.latest_version(session())
    if latest is None:
        return _dictionary(None, repository.working_catalogue(session()))
    return _dictionary(latest, Catalogue.from_list(latest.catalogue))


@bp.get("/versions/<int:number>/catalogue")
def dictionary_page(number: int) -> str:
    """The data dictionary as version ``number`` was published."""
    version = _version(number)
    return _dictionary(version, Catalogue.from_list(version.catalogue))


def _dictionary(version: Version | None, catalogue: Catalogue) -> str:
    # Only versions up to this one: a dictionary shows what was known when it published.
    upto = version.number if version is not None else None
    rows = [v for v in reversed(repository.versions_page(session(), 2**31 - 1))
            if upto is None or v.number <= upto]
    history = catalogue_history((v.number, v.catalogue) for v in rows)
    ownership = current_app.config.get("OWNERSHIP") or {}
    referred = {eid: catalogue.referred_by(eid) for eid in catalogue.entities}
    return render_template("web/dictionary.html", version=version,
                           entities=list(catalogue.entities.values()), catalogue=catalogue,
                           history=history, ownership=ownership, referred=referred)


@bp.get("/versions/<int:number>/entities/<string:entity_id>")
def entity_page(number: int, entity_id: str) -> tuple[str, int]:
    """An entity's records in a version, filtered by field values, a page at a time."""
    version = _version(number)
    entity = _entity(version, entity_id)
    filters = {f.id: request.args[f.id].strip() for f in entity.fields
               if request.args.get(f.id, "").strip()}
    equals, errors = parse_filters(entity, filters.items())
    names = {f.id: f.name for f in entity.fields}
    problems = [f"{names[e['field']]}: {e['message']}" for e in errors]
    after = _cursor(request.args.get("after"))
    records: list[dict[str, Any]] = []
    next_key = None
    if not problems:
        try:
            rows = repository.records_page(
                session(), entity, version.number, RecordQuery(equals), after_key=after,
                limit=PAGE_SIZE, budget_ms=current_app.config["RECORD_QUERY_BUDGET_MS"])
        except QueryTooExpensive as exc:
            raise PageError(503, str(exc)) from None
        for key, data in rows[:PAGE_SIZE]:
            record = project(entity, decode(data))
            history = url_for(".history_page", entity_id=entity.id,
                              **{k: record[k] for k in entity.key})
            records.append({**record, "_key": key, "_history": history})
        if len(rows) > PAGE_SIZE:
            next_key = records[-1]["_key"]
    query: dict[str, Any] = dict(filters)
    next_url = (url_for(".entity_page", number=number, entity_id=entity_id, **query,
                        after=cursors.encode(next_key)) if next_key else None)
    page = render_template(
        "web/entity.html", version=version, entity=entity, records=records, filters=filters,
        problems=problems, next_url=next_url,
        first_url=url_for(".entity_page", number=number, entity_id=entity_id,
                          **query) if after else None,
        total=version.entities.get(entity.id, {}).get("records"))
    return page, 400 if problems else 200


@bp.get("/entities/<string:entity_id>/history")
def history_page(entity_id: str) -> str:
    """One record's history: every version it changed in, and which version brought each value."""
    latest = repository.latest_version(session())
    if latest is None:
        raise PageError(404, "no version has been published yet")
    entity = _entity(latest, entity_id)
    values = {}
    for k in entity.key:
        fdef = entity.field(k)
        assert fdef is not None
        raw = request.args.get(k, "")
        try:
            values[k] = coerce(fdef, raw, dates="iso")
        except ValueError as exc:
            raise PageError(400, f"{fdef.name}: {exc}") from None
        if values[k] is None:
            raise PageError(400, f"give the key field {fdef.name} ({k})")
    key = key_text(entity, values)
    periods = record_history(entity, repository.key_rows(session(), entity.id, key))
    if not periods:
        raise PageError(404, f"{entity.name} has never had the record "
                             f"{key.replace(KEY_SEPARATOR, ', ')}")
    return render_template("web/history.html", entity=entity, key=values,
                           periods=list(reversed(periods)),
                           since=introduced_in(periods, entity), latest=latest.number)


@bp.get("/diff")
def diff_page() -> str:
    """What changed between two versions (the delta), entity by entity."""
    numbers = repository.version_numbers(session())
    if not numbers:
        raise PageError(404, "no version has been published yet")
    new = _version(request.args.get("to", numbers[0]))
    default_from = new.previous_version or new.number
    old = _version(request.args.get("from", default_from))
    if old.number > new.number:
        raise PageError(400, f"from ({old.number}) must not be after to ({new.number})")
    head = delta.header(old, new)
    changes: list[dict[str, Any]] = []
    counts: Counter[tuple[str, str]] = Counter()
    db = session()
    for change in delta.iter_changes(
            old, new, lambda eid, m, n: repository.rows_between(db, eid, m, n),
            previous=True):
        counts[(change["entity"], change["op"])] += 1
        if len(changes) < DIFF_LIMIT:
            changes.append(change)
    per_entity: dict[str, dict[str, int]] = {}
    for (eid, op), n in sorted(counts.items()):
        per_entity.setdefault(eid, {"insert": 0, "update": 0, "delete": 0})[op] = n
    catalogue = Catalogue.from_list(new.catalogue)
    return render_template("web/diff.html", old=old, new=new, numbers=numbers,
                           catalogue_changes=head["catalogue"], per_entity=per_entity,
                           changes=changes, total=sum(counts.values()), limit=DIFF_LIMIT,
                           catalogue=catalogue)


@bp.get("/releases")
def releases_page() -> str:
    rows = repository.releases(session())
    return render_template("web/releases.html", releases=list(reversed(rows)))


def _cursor(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return cursors.decode_key(value)
    except ValueError:
        raise PageError(400, "that page link is not one this site gave out") from None


def register(app: Flask) -> None:
    app.register_blueprint(bp)


@bp.get("/api-docs")
def api_docs() -> str:
    """The HTTP API, rendered here from the OpenAPI document the service serves."""
    view = current_app.view_functions.get("openapi")
    if view is None:
        raise PageError(404, "this service does not publish an OpenAPI document")
    answer: Any = view()
    document: dict[str, Any] = answer.get_json() if isinstance(answer, Response) else answer
    operations = []
    for path, methods in sorted(document.get("paths", {}).items()):
        for method, op in methods.items():
            if method.startswith("x-") or not isinstance(op, dict):
                continue
            body = (op.get("requestBody") or {}).get("content", {})
            operations.append({
                "id": f"{method}-{path}".replace("/", "-").replace("{", "").replace("}", ""),
                "method": method.upper(), "path": path,
                "summary": op.get("summary") or op.get("description") or "",
                "admin": bool(op.get("security")),
                "parameters": [_parameter(p) for p in op.get("parameters", [])],
                "body": [(mime, _fields(media.get("schema", {})))
                         for mime, media in body.items()],
                "responses": sorted((str(code), (r or {}).get("description", ""))
                                    for code, r in op.get("responses", {}).items()),
            })
    return render_template("web/api_docs.html", info=document.get("info", {}),
                           operations=operations)


def _parameter(p: dict[str, Any]) -> dict[str, Any]:
    schema = p.get("schema", {})
    return {"name": p.get("name"), "in": p.get("in"), "required": p.get("required", False),
            "type": _type(schema), "description": p.get("description", "")}


def _fields(schema: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(schema.get("required", []))
    return [{"name": name, "type": _type(s), "required": name in required}
            for name, s in schema.get("properties", {}).items()]


def _type(schema: dict[str, Any]) -> str:
    kind = str(schema.get("type", ""))
    if schema.get("format"):
        kind += f" ({schema['format']})"
    if schema.get("enum"):
        kind += ": " + " | ".join(str(v) for v in schema["enum"])
    return kind
