"""The admin console under /admin: server-rendered pages (no JavaScript) over the same
service-layer functions as the admin API and the CLI.

- Sign in with an API token: checked once, exchanged for a server-side session
  (service_layer/admin_sessions.py); the cookie (Flask's signed session) carries only the
  session's random secret and the forms' CSRF secret: HttpOnly, SameSite=Strict, Secure when
  the request came over TLS, a fixed lifetime, ended by signing out.
- Every form carries a Flask-WTF CSRF token, checked before any POST of this blueprint.
- Every page is declared with ``page(rule, *roles)``: the token's caller is resolved again on
  each request and ``Caller.require`` checks the roles, exactly as the API's views do.
  PAGE_ROLES lists them, for the test that walks the URL map.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import wraps
from typing import Any

from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    g,
    has_request_context,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.wrappers import Response

from isd_service.adapters import repository
from isd_service.adapters.orm import PublicationRequest
from isd_service.domain.access import ROLES, Caller, Forbidden, Unauthorized
from isd_service.domain.approval import APPROVE, REJECT
from isd_service.domain.catalogue import Catalogue, catalogue_changes
from isd_service.domain.errors import DomainError
from isd_service.domain.formats import FORMATS, InputFile
from isd_service.domain.ownership import restricted_organisation
from isd_service.domain.staging import MODES
from isd_service.domain.validation import LoadRejected
from isd_service.entrypoints.flask_db import session as db_session
from isd_service.entrypoints.flask_db import uow
from isd_service.service_layer import (
    admin_sessions,
    approvals,
    audit,
    calendar,
    catalogue,
    drafts,
    tokens,
    webhooks,
)
from isd_service.service_layer import schedule as steps

bp = Blueprint("admin_pages", __name__, url_prefix="/admin", template_folder="templates")
csrf = CSRFProtect()

EVERYONE = ("loader", "publisher")
PUBLISHERS = ("publisher",)
ADMINS = ("admin",)
# endpoint -> the roles that may see it (admin holds every role); pages outside it need none.
PAGE_ROLES: dict[str, tuple[str, ...]] = {}
OPEN_PAGES = ("admin_pages.sign_in", "admin_pages.sign_out")
SESSION_KEY = "admin_session"
DRAFT_LIMIT = 500


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed cookie, marked Secure whenever the request came over TLS (behind a
    proxy: X-Forwarded-Proto, as the deployment's proxy settings allow)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(has_request_context() and request.is_secure)


def init_app(app: Flask) -> None:
    minutes = int(app.config["ADMIN_SESSION_MINUTES"])
    app.config.update(
        SESSION_COOKIE_NAME="isd_session", SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict", SESSION_REFRESH_EACH_REQUEST=False,
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=minutes),
        # Checked by this blueprint alone: the API takes bearer tokens, not cookies.
        WTF_CSRF_CHECK_DEFAULT=False, WTF_CSRF_TIME_LIMIT=minutes * 60,
        # The pages send no Referer (Referrer-Policy: no-referrer), which a strict check
        # over TLS would demand; the token and SameSite=Strict stand without it.
        WTF_CSRF_SSL_STRICT=False)
    app.session_interface = CookieSessions()
    csrf.init_app(app)


def register(app: Flask) -> None:
    app.register_blueprint(bp)


@bp.before_request
def _check_csrf() -> None:
    if request.method == "POST":
        csrf.protect()


@bp.after_request
def _never_cached(response: Response) -> Response:
    """Admin pages show the draft, tokens and secrets: no cache may keep them."""
    response.headers["Cache-Control"] = "no-store"
    return response


def signed_in() -> Caller:
    """The caller of this browser's session (Unauthorized: sign in)."""
    return admin_sessions.resume(uow(), session.get(SESSION_KEY))


def caller() -> Caller:
    return g.caller


def page(rule: str, *roles: str, methods: tuple[str, ...] = ("GET",)
         ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a page that needs a session whose token holds one of ``roles``."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def checked(**kwargs: Any) -> Any:
            g.caller = signed_in()
            g.caller.require(*roles)
            return view(**kwargs)

        PAGE_ROLES[f"{bp.name}.{view.__name__}"] = roles
        bp.add_url_rule(rule, view.__name__, checked, methods=list(methods))
        return checked

    return decorator


@bp.errorhandler(Unauthorized)
def _sign_in_first(exc: Unauthorized) -> Response:
    session.pop(SESSION_KEY, None)
    flash(str(exc))
    target = request.full_path if request.method == "GET" else None
    return redirect(url_for("admin_pages.sign_in", next=target), 303)


@bp.errorhandler(Forbidden)
def _forbidden(exc: Forbidden) -> tuple[str, int]:
    return render_template("web/admin/error.html", status=403, message=str(exc)), 403


@bp.errorhandler(CSRFError)
def _csrf(exc: CSRFError) -> tuple[str, int]:
    return render_template("web/admin/error.html", status=400,
                           message=f"the form could not be checked ({exc.description}): "
                                   "reload the page and send it again"), 400


@bp.errorhandler(DomainError)
def _refused(exc: DomainError) -> tuple[str, int]:
    """A refusal of the service layer, with its reason; nothing was changed."""
    return render_template("web/admin/error.html", status=exc.status, message=str(exc)), \
        exc.status


@bp.context_processor
def _who() -> dict[str, Any]:
    who = g.get("caller")
    return {"who": who, "may": (lambda *roles: _may(who, *roles))}


def _may(who: Caller | None, *roles: str) -> bool:
    if who is None:
        return False
    try:
        who.require(*roles)
    except Forbidden:
        return False
    return True


def _done(message: str, endpoint: str, **values: Any) -> Response:
    flash(message)
    return redirect(url_for(endpoint, **values), 303)


# --- signing in and out --------------------------------------------------------------------

@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> Any:
    """Sign in with an API token."""
    next_page = request.values.get("next") or ""
    if not next_page.startswith("/admin") or next_page.startswith("//"):
        next_page = url_for("admin_pages.dashboard")
    if request.method == "GET":
        return render_template("web/admin/sign_in.html", next_page=next_page)
    try:
        secret, _who = admin_sessions.sign_in(
            uow(), request.form.get("token", ""),
            minutes=int(current_app.config["ADMIN_SESSION_MINUTES"]))
    except Unauthorized as exc:
        return render_template("web/admin/sign_in.html", next_page=next_page,
                               error=str(exc)), 401
    # A new session: nothing of the one before (its CSRF secret included) carries over.
    session.clear()
    session.permanent = True
    session[SESSION_KEY] = secret
    return redirect(next_page, 303)


@bp.post("/sign-out")
def sign_out() -> Response:
    admin_sessions.sign_out(uow(), session.get(SESSION_KEY))
    session.clear()
    flash("signed out")
    return redirect(url_for("admin_pages.sign_in"), 303)


# --- the dashboard ---------------------------------------------------------------------------

@page("/", *EVERYONE)
def dashboard() -> str:
    db = db_session()
    who = caller()
    latest = repository.latest_version(db)
    working = repository.working_catalogue(db)
    old = Catalogue.from_list(latest.catalogue) if latest else Catalogue([])
    return render_template(
        "web/admin/dashboard.html", latest=latest, draft=repository.draft_summary(db),
        catalogue_changes=catalogue_changes(old, working), catalogue=working,
        frozen=repository.frozen_release(db),
        next_runs=steps.next_runs(db) if _may(who, *PUBLISHERS) else None,
        awaiting=steps.awaiting_approval(db) if _may(who, *PUBLISHERS) else None,
        requests=([r for r in approvals.list_requests(db, limit=20)
                   if r.state == "awaiting-approval"] if _may(who, *PUBLISHERS) else None),
        loads=repository.recent_loads(db, 10),
        events=audit.page(db, limit=15)[0] if _may(who, *ADMINS) else None)


# --- loads -----------------------------------------------------------------------------------

SORTS = {"file": lambda p: (p.get("file") or "", p.get("line") or 0),
         "line": lambda p: (p.get("line") or 0, p.get("file") or "")}


@page("/upload", *EVERYONE)
def upload() -> str:
    """The load form, and the last refused load's every error, sorted by file or line."""
    sort = request.args.get("sort", "file")
    refusal = admin_sessions.refusal(uow(), session.get(SESSION_KEY)) \
        if request.args.get("refused") else None
    problems = sorted(refusal["problems"], key=SORTS.get(sort, SORTS["file"])) \
        if refusal else []
    return render_template("web/admin/upload.html", formats=FORMATS, modes=MODES,
                           entities=repository.working_catalogue(db_session()).entities,
                           refusal=refusal, problems=problems, sort=sort)


@page("/upload", *EVERYONE, methods=("POST",))
def upload_post() -> Response:
    files = [InputFile(name=f.filename or "upload", data=f.read())
             for f in request.files.getlist("files") if f.filename]
    fmt, mode = request.form.get("format", "mdd-csv"), request.form.get("mode", "replace")
    who = caller()
    if not files:
        admin_sessions.keep_refusal(uow(), session.get(SESSION_KEY), {
            "message": "no file was chosen", "files": [], "problems": [
                {"entity": None, "file": None, "line": None, "field": "files", "value": None,
                 "message": "choose one or more files to load"}]})
        return redirect(url_for("admin_pages.upload", refused=1), 303)
    try:
        record = drafts.load(uow(), files=files, fmt=fmt, mode=mode,
                             entity_id=request.form.get("entity") or None, actor=who.actor,
                             organisation=who.organisation,
                             restricted_to=restricted_organisation(
                                 who, current_app.config["ADMIN_ORG"]),
                             ownership_fields=current_app.config["OWNERSHIP"])
    except LoadRejected as exc:
        admin_sessions.keep_refusal(uow(), session.get(SESSION_KEY), {
            "message": str(exc), "files": [f.name for f in files],
            "problems": [p.to_dict() for p in exc.problems]})
        return redirect(url_for("admin_pages.upload", refused=1), 303)
    admin_sessions.keep_refusal(uow(), session.get(SESSION_KEY), None)
    return _done(f"load {record.id} accepted: {record.inserted} inserted, {record.updated} "
                 f"updated, {record.deleted} deleted, {record.unchanged} unchanged",
                 "admin_pages.draft")


# --- the draft -------------------------------------------------------------------------------

@page("/draft", *EVERYONE)
def draft() -> str:
    """The open draft as a diff, field by field (old -> new), filterable by entity."""
    db = db_session()
    entity = request.args.get("entity") or None
    working = repository.working_catalogue(db)
    counts, changes = drafts.draft_changes(db, entity_id=entity, limit=DRAFT_LIMIT)
    all_counts = counts if entity is None else drafts.draft_changes(db, limit=0)[0]
    return render_template("web/admin/draft.html", counts=counts, all_counts=all_counts,
                           changes=changes, entity=entity, catalogue=working,
                           limit=DRAFT_LIMIT, total=sum(sum(c.values())
                                                        for c in counts.values()))


@page("/draft/discard", *PUBLISHERS, methods=("POST",))
def discard_draft() -> Response:
    n = drafts.discard(uow(), actor=caller().actor, organisation=caller().organisation)
    return _done(f"the draft is discarded ({n} changes)", "admin_pages.dashboard")


# --- publication -----------------------------------------------------------------------------

@page("/publications", *PUBLISHERS)
def publications() -> str:
    db = db_session()
    return render_template("web/admin/publications.html",
                           requests=[approvals.summary(r) for r in approvals.list_requests(db)],
                           approvals_needed=approvals.needed(uow()),
                           frozen=repository.frozen_release(db))


def _optional_int(name: str) -> int | None:
    text = request.form.get(name, "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise DomainError(f"{name.replace('_', ' ')} must be a whole number, not {text!r}",
                          status=422)
    return int(text)


def _optional_date(name: str) -> date | None:
    text = request.form.get(name, "").strip()
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        raise DomainError(f"{name.replace('_', ' ')} must be a date (YYYY-MM-DD), not "
                          f"{text!r}", status=422) from None


def _moment(name: str) -> datetime:
    text = request.form.get(name, "").strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise DomainError(f"{name.replace('_', ' ')} must be a UTC date and time "
                          f"(YYYY-MM-DDTHH:MM), not {text!r}", status=422) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@page("/publications", *PUBLISHERS, methods=("POST",))
def request_publication() -> Response:
    who = caller()
    out = approvals.request_or_publish(
        uow(), actor=who.actor, holder=who.holder, organisation=who.organisation,
        version=_optional_int("version"), go_live_date=_optional_date("go_live_date"),
        force=request.form.get("force") == "on")
    if isinstance(out, PublicationRequest):
        return _done(f"publication request {out.id} awaits {out.approvals_needed} approval(s) "
                     "by another publisher", "admin_pages.publications")
    return _done(f"version {out.number} is published", "admin_pages.publications")


def _decide(request_id: int, decision: str) -> Response:
    who = caller()
    row, version = approvals.decide(uow(), request_id, decision=decision, actor=who.actor,
                                    holder=who.holder, organisation=who.organisation,
                                    comment=request.form.get("comment") or None)
    if version is not None:
        return _done(f"approved: version {version.number} is published",
                     "admin_pages.publications")
    return _done(f"publication request {row.id} is {row.state}", "admin_pages.publications")


@page("/publication-requests/<int:request_id>/approve", *PUBLISHERS, methods=("POST",))
def approve(request_id: int) -> Response:
    return _decide(request_id, APPROVE)


@page("/publication-requests/<int:request_id>/reject", *PUBLISHERS, methods=("POST",))
def reject(request_id: int) -> Response:
    return _decide(request_id, REJECT)


# --- releases --------------------------------------------------------------------------------

@page("/releases", *PUBLISHERS)
def releases() -> str:
    db = db_session()
    return render_template("web/admin/releases.html",
                           releases=list(reversed(repository.releases(db))),
                           runs=steps.past_runs(db, 20))


@page("/releases", *PUBLISHERS, methods=("POST",))
def plan_release() -> Response:
    row = calendar.create_release(
        uow(), change_deadline=_moment("change_deadline"), publish_at=_moment("publish_at"),
        go_live_date=_optional_date("go_live_date") or _missing("go live date"),
        version=_optional_int("version"), actor=caller().actor,
        organisation=caller().organisation)
    return _done(f"release {row.id} is planned", "admin_pages.releases")


def _missing(what: str) -> Any:
    raise DomainError(f"give the {what}", status=422)


@page("/releases/<int:release_id>/change", *PUBLISHERS, methods=("POST",))
def change_release(release_id: int) -> Response:
    changes: dict[str, Any] = {}
    for name in ("change_deadline", "publish_at"):
        if request.form.get(name, "").strip():
            changes[name] = _moment(name)
    if (go_live := _optional_date("go_live_date")) is not None:
        changes["go_live_date"] = go_live
    calendar.update_release(uow(), release_id, changes, actor=caller().actor,
                            organisation=caller().organisation)
    return _done(f"release {release_id} is changed", "admin_pages.releases")


@page("/releases/<int:release_id>/cancel", *PUBLISHERS, methods=("POST",))
def cancel_release(release_id: int) -> Response:
    calendar.cancel_release(uow(), release_id, actor=caller().actor,
                            organisation=caller().organisation)
    return _done(f"release {release_id} is cancelled", "admin_pages.releases")


# --- the catalogue ---------------------------------------------------------------------------

@page("/catalogue", *ADMINS)
def catalogue_page() -> str:
    working = repository.working_catalogue(db_session())
    return render_template("web/admin/catalogue.html",
                           entities=list(working.entities.values()))


def _definition() -> dict[str, Any]:
    text = request.form.get("definition", "")
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise DomainError(f"the definition is not JSON: {exc}", status=422) from None
    if not isinstance(value, dict):
        raise DomainError("the definition must be a JSON object", status=422)
    return value


@page("/catalogue/entities", *ADMINS, methods=("POST",))
def add_entity() -> Response:
    entity = catalogue.add_entity(uow(), _definition(), actor=caller().actor,
                                  organisation=caller().organisation)
    return _done(f"entity {entity.id} is added", "admin_pages.catalogue_page")


@page("/catalogue/fields", *ADMINS, methods=("POST",))
def add_field() -> Response:
    entity_id = request.form.get("entity", "")
    new = catalogue.add_field(uow(), entity_id, _definition(), actor=caller().actor,
                              organisation=caller().organisation)
    return _done(f"field {new.id} is added to {entity_id}", "admin_pages.catalogue_page")


# --- tokens ----------------------------------------------------------------------------------

@page("/tokens", *ADMINS)
def tokens_page() -> str:
    now = datetime.now(UTC)
    return render_template("web/admin/tokens.html", roles=ROLES,
                           tokens=[(tokens.token_summary(t), tokens.state(t, now))
                                   for t in tokens.list_tokens(db_session())])


@page("/tokens", *ADMINS, methods=("POST",))
def issue_token() -> str:
    days = _optional_int("days")
    text, row = tokens.issue_token(
        uow(), organisation=request.form.get("organisation", ""),
        roles=request.form.getlist("roles"), name=request.form.get("name") or None,
        description=request.form.get("description") or None,
        expires_at=datetime.now(UTC) + timedelta(days=days) if days else None,
        actor=caller().actor, actor_organisation=caller().organisation)
    # Shown once, on this page only (never redirected through a URL or the cookie).
    return render_template("web/admin/secret.html", what=f"token {row.id}", secret=text,
                           back=url_for("admin_pages.tokens_page"))


@page("/tokens/<int:token_id>/revoke", *ADMINS, methods=("POST",))
def revoke_token(token_id: int) -> Response:
    tokens.revoke_token(uow(), token_id, actor=caller().actor,
                        actor_organisation=caller().organisation)
    return _done(f"token {token_id} is revoked", "admin_pages.tokens_page")


# --- webhooks --------------------------------------------------------------------------------

@page("/webhooks", *ADMINS)
def webhooks_page() -> str:
    return render_template("web/admin/webhooks.html", envelopes=webhooks.ENVELOPES,
                           subscriptions=[webhooks.subscription_dict(s)
                                          for s in webhooks.active(db_session())])


@page("/webhooks", *ADMINS, methods=("POST",))
def add_webhook() -> str:
    row, secret = webhooks.subscribe(
        uow(), url=request.form.get("url", ""),
        description=request.form.get("description") or None,
        envelope=request.form.get("envelope", "plain"), actor=caller().actor,
        organisation=caller().organisation)
    return render_template("web/admin/secret.html", what=f"webhook {row.id}'s signing secret",
                           secret=secret, back=url_for("admin_pages.webhooks_page"))


@page("/webhooks/<int:subscription_id>/delete", *ADMINS, methods=("POST",))
def delete_webhook(subscription_id: int) -> Response:
    webhooks.unsubscribe(uow(), subscription_id, actor=caller().actor,
                         organisation=caller().organisation)
    return _done(f"webhook {subscription_id} is removed", "admin_pages.webhooks_page")
