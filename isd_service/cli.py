"""The `isd` command: database, tokens, loads, publication, seed data and the server."""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext
from sqlalchemy import inspect, select

from isd_service import PROJECT_ROOT, audit, catalogue_db, drafts, releases
from isd_service.auth import ROLES, create_token, list_tokens, revoke_token, token_summary
from isd_service.catalogue import CatalogueError
from isd_service.downloads.commands import build_after_publication
from isd_service.extensions import session
from isd_service.formats import FORMATS, InputFile
from isd_service.models import Load, Version
from isd_service.store import load_release

MIGRATIONS = PROJECT_ROOT / "migrations"
SEED_DATA = PROJECT_ROOT / "seed_data"


def _fail(message: str, problems: list[dict[str, Any]] | None = None) -> None:
    click.echo(f"error: {message}", err=True)
    for p in problems or []:
        where = ", ".join(f"{k} {p[k]}" for k in ("entity", "file", "line", "field")
                          if p.get(k) is not None)
        value = f" (value {p['value']!r})" if p.get("value") is not None else ""
        click.echo(f"  {where}: {p['message']}{value}", err=True)
    sys.exit(1)


def _progress() -> drafts.Progress | None:
    """Show progress on a terminal; stay quiet when output goes to a file or cron."""
    if not sys.stderr.isatty():
        return None

    def show(step: str, done: int, total: int) -> None:
        sys.stderr.write(f"\r{done}/{total} {step}\x1b[K")
        sys.stderr.flush()
        if step == "write":
            sys.stderr.write("\n")

    return show


# --- db -----------------------------------------------------------------------------------

@click.group("db")
def db_group() -> None:
    """Manage the database schema."""


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["url"] = url
    return cfg


def upgrade_database(app: Flask) -> bool:
    """Bring the schema to head; on an empty catalogue install the seed one. True if seeded."""
    from alembic import command

    command.upgrade(alembic_config(app.config["DATABASE_URL"]), "head")
    db = session()
    if catalogue_db.working_catalogue(db).entities:
        return False
    drafts.lock_draft(db)
    catalogue_db.install(db, catalogue_db.read_catalogue_file(SEED_DATA / "catalogue.json"))
    db.commit()
    return True


@db_group.command("upgrade")
@with_appcontext
def db_upgrade() -> None:
    """Apply migrations; an empty database also gets the seed catalogue."""
    seeded = upgrade_database(current_app)
    click.echo("database is up to date" + (" (seed catalogue installed)" if seeded else ""))


# --- token --------------------------------------------------------------------------------

@click.group("token")
def token_group() -> None:
    """Manage API tokens."""


@token_group.command("create")
@click.option("--org", required=True, help="4-character market participant id")
@click.option("--role", "roles", multiple=True, required=True, type=click.Choice(ROLES))
@click.option("--days", type=click.IntRange(1, 3650), help="expire after this many days")
@click.option("--description", help="what the token is for")
@with_appcontext
def token_create(org: str, roles: tuple[str, ...], days: int | None,
                 description: str | None) -> None:
    """Create a token; it is printed once, as the last line."""
    expires = datetime.now(UTC) + timedelta(days=days) if days else None
    try:
        token = create_token(session(), organisation=org, roles=list(roles),
                             expires_at=expires, description=description, actor="cli",
                             actor_organisation=current_app.config["ADMIN_ORG"])
    except ValueError as exc:
        _fail(str(exc))
    click.echo(f"token for {org} ({', '.join(sorted(set(roles)))}); it is not shown again:")
    click.echo(token)


@token_group.command("list")
@with_appcontext
def token_list() -> None:
    """List the tokens (id, organisation, roles, state); never their text."""
    now = datetime.now(UTC)
    for row in list_tokens(session()):
        info = token_summary(row)
        expires = row.expires_at
        state = ("revoked" if row.revoked_at is not None else
                 "expired" if expires and (expires if expires.tzinfo else
                                           expires.replace(tzinfo=UTC)) <= now else "active")
        click.echo(f"{info['id']:>5}  {info['organisation']}  {','.join(info['roles']):<24} "
                   f"{state:<8} created {info['created_at']}  expires {info['expires_at']}"
                   + (f"  {info['description']}" if info["description"] else ""))


@token_group.command("revoke")
@click.argument("token_id", type=click.IntRange(1))
@with_appcontext
def token_revoke(token_id: int) -> None:
    """Revoke a token by its id: refused from now on."""
    try:
        revoke_token(session(), token_id, actor="cli",
                     actor_organisation=current_app.config["ADMIN_ORG"])
    except (LookupError, ValueError) as exc:
        _fail(str(exc))
    click.echo(f"token {token_id} revoked")


# --- load, draft, publish -----------------------------------------------------------------

def _input_files(paths: tuple[str, ...], fmt: str) -> list[InputFile]:
    files = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            suffix = ".json" if fmt == "json" else ".csv"
            members = sorted(p for p in path.iterdir() if p.suffix.lower() == suffix)
            if not members:
                _fail(f"{path} holds no {suffix} file")
            files += [InputFile(p.name, p.read_bytes()) for p in members]
        elif path.is_file():
            files.append(InputFile(path.name, path.read_bytes()))
        else:
            _fail(f"{path}: no such file or folder")
    return files


@click.command("load")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="mdd-csv",
              show_default=True)
@click.option("--mode", type=click.Choice(drafts.MODES), default="replace", show_default=True)
@click.option("--entity", help="entity id (or MDD stem) when a file's name does not say")
@click.option("--by", "actor", default="cli", show_default=True, help="who is loading")
@click.option("--org", help="organisation recorded with the load [default: ADMIN_ORG]")
@click.option("--target", type=click.Choice(["open", "frozen"]), default="open",
              show_default=True,
              help="frozen: override into the release frozen at its change-request deadline")
@click.argument("paths", nargs=-1, required=True)
@with_appcontext
def load_command(fmt: str, mode: str, entity: str | None, actor: str, org: str | None,
                 target: str, paths: tuple[str, ...]) -> None:
    """Load files (or folders of files) into the draft, all or nothing."""
    files = _input_files(paths, fmt)
    started = datetime.now(UTC)
    try:
        record = drafts.load(session(), files=files, fmt=fmt, mode=mode, entity_id=entity,
                             actor=actor, organisation=org or current_app.config["ADMIN_ORG"],
                             progress=_progress(), target=target)
    except drafts.LoadRejected as exc:
        _fail(f"the load was refused and nothing changed: {len(exc.problems)} problem(s)",
              [p.to_dict() for p in exc.problems[: current_app.config["MAX_REPORTED_ERRORS"]]])
    seconds = (datetime.now(UTC) - started).total_seconds()
    for eid, counts in record.entities.items():
        click.echo(f"{eid:<36} " + " ".join(f"{k} {v}" for k, v in counts.items()))
    click.echo(f"load {record.id}: inserted {record.inserted}, updated {record.updated}, "
               f"deleted {record.deleted}, unchanged {record.unchanged} in {seconds:.1f}s")
    release = load_release(session(), record.id)
    if release is not None:
        click.echo(f"staged for release {release.id} (version {release.version}, "
                   f"{release.state})")


@click.command("publish")
@click.option("--version", type=click.IntRange(1, 2**31 - 1),
              help="the version number (only the first can be chosen)")
@click.option("--go-live", type=click.DateTime(formats=["%Y-%m-%d"]), help="YYYY-MM-DD")
@click.option("--force", is_flag=True, help="publish even if the draft is empty")
@click.option("--by", "actor", default="cli", show_default=True)
@with_appcontext
def publish_command(version: int | None, go_live: datetime | None, force: bool,
                    actor: str) -> None:
    """Publish the draft as the next version; prints the version as the last line."""
    started = datetime.now(UTC)
    try:
        row = releases.publish(session(), actor=actor,
                               organisation=current_app.config["ADMIN_ORG"], version=version,
                               go_live_date=go_live.date() if go_live else None, force=force)
    except releases.PublishRefused as exc:
        _fail(str(exc))
    seconds = (datetime.now(UTC) - started).total_seconds()
    click.echo(f"published {row.record_count} records, sha256 {row.sha256} "
               f"in {seconds:.1f}s")
    try:
        build_after_publication(current_app._get_current_object(),  # type: ignore[attr-defined]
                                row.number)
    except Exception as exc:  # published all the same: the files get built on first request
        click.echo(f"warning: version {row.number} is published, but building its downloads "
                   f"failed: {exc}", err=True)
    click.echo(str(row.number))


@click.group("draft")
def draft_group() -> None:
    """Inspect or discard the draft."""


@draft_group.command("show")
@with_appcontext
def draft_show() -> None:
    """Print the staged changes per entity as JSON."""
    click.echo(json.dumps(drafts.draft_summary(session()), indent=2, sort_keys=True))


@draft_group.command("discard")
@with_appcontext
def draft_discard() -> None:
    """Drop every staged record change."""
    n = audit.discard_draft(session(), actor="cli", organisation=current_app.config["ADMIN_ORG"])
    click.echo(f"discarded {n} staged change(s)")


# --- catalogue ----------------------------------------------------------------------------

@click.group("catalogue")
def catalogue_group() -> None:
    """Add entities and data items to the catalogue."""


def _definition(path: str) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        _fail(f"{path}: {exc}")
        raise


@catalogue_group.command("add-entity")
@click.argument("definition", type=click.Path(exists=True, dir_okay=False))
@with_appcontext
def catalogue_add_entity(definition: str) -> None:
    """Add an entity from a JSON definition file."""
    db = session()
    drafts.lock_draft(db)
    try:
        entity = catalogue_db.add_entity(db, _definition(definition))
    except CatalogueError as exc:
        db.rollback()
        _fail("the entity was refused", exc.problems)
    audit.record(db, action="catalogue.add_entity", actor="cli",
                 organisation=current_app.config["ADMIN_ORG"], subject=entity.id,
                 details=entity.to_dict())
    db.commit()
    click.echo(f"added entity {entity.id}")


@catalogue_group.command("add-field")
@click.argument("entity_id")
@click.argument("definition", type=click.Path(exists=True, dir_okay=False))
@with_appcontext
def catalogue_add_field(entity_id: str, definition: str) -> None:
    """Add a data item (a JSON field definition file) to an entity."""
    db = session()
    drafts.lock_draft(db)
    try:
        field = catalogue_db.add_field(db, entity_id, _definition(definition))
    except (CatalogueError, LookupError) as exc:
        db.rollback()
        _fail(str(exc), getattr(exc, "problems", None))
    audit.record(db, action="catalogue.add_field", actor="cli",
                 organisation=current_app.config["ADMIN_ORG"], subject=f"{entity_id}.{field.id}",
                 details={"entity": entity_id, "field": field.to_dict()})
    db.commit()
    click.echo(f"added field {field.id} to {entity_id}")


# --- seed and serve -----------------------------------------------------------------------

@click.command("seed")
@click.option("--version", type=click.IntRange(1, 2**31 - 1), default=1, show_default=True)
@click.option("--if-empty", is_flag=True,
              help="do nothing (and succeed) when versions are already published")
@with_appcontext
def seed_command(version: int, if_empty: bool) -> None:
    """Load seed_data/ into an empty database and publish it; prints the version."""
    db = session()
    if not inspect(db.get_bind()).has_table("version"):
        _fail("the database has no schema: run `isd db upgrade` first")
    latest = db.scalars(select(Version.number).order_by(Version.number.desc())).first()
    if latest is not None and if_empty:
        click.echo(f"versions are already published; the latest is {latest}")
        return
    if latest is not None:
        _fail("the database already has published versions; seed only an empty one")
    if db.scalars(select(Load.id).limit(1)).first() is not None:
        _fail("the draft already has loads in it; seed only an empty database")
    files = _input_files((str(SEED_DATA / "records"),), "csv")
    try:
        drafts.load(db, files=files, fmt="csv", mode="replace", entity_id=None,
                    actor="seed", organisation=current_app.config["ADMIN_ORG"])
        row = releases.publish(db, actor="seed", organisation=current_app.config["ADMIN_ORG"],
                               version=version, go_live_date=date.today())
    except drafts.LoadRejected as exc:
        _fail("the seed data was refused", [p.to_dict() for p in exc.problems])
    click.echo(f"seed data published: {row.record_count} records")
    click.echo(str(row.number))


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", type=click.IntRange(1, 64),
              help="worker processes [default: gunicorn.conf.py's, from ISD_WORKERS or CPUs]")
def serve_command(host: str, port: int, workers: int | None) -> None:
    """Serve the API with gunicorn, with the settings of gunicorn.conf.py."""
    from gunicorn.app.base import BaseApplication

    from isd_service import create_app

    class Server(BaseApplication):
        def load_config(self) -> None:
            settings = PROJECT_ROOT / "gunicorn.conf.py"
            if settings.is_file():
                import runpy

                for name, value in runpy.run_path(str(settings)).items():
                    if name in self.cfg.settings and name != "wsgi_app" and value is not None:
                        self.cfg.set(name, value)
            self.cfg.set("bind", f"{host}:{port}")
            if workers is not None:
                self.cfg.set("workers", workers)

        def load(self) -> Flask:
            return create_app()

    Server().run()


def register_commands(app: Flask) -> None:
    for command in (db_group, token_group, load_command, publish_command, draft_group,
                    catalogue_group, seed_command, serve_command):
        app.cli.add_command(command)
    from isd_service.release_commands import release_group, scheduler_command

    for command in (release_group, scheduler_command):
        app.cli.add_command(command)
    from isd_service.downloads.commands import downloads_group
    from isd_service.downloads.synthetic import bench_group

    app.cli.add_command(bench_group)
    app.cli.add_command(downloads_group)


def main() -> None:
    """Entry point of the `isd` console script."""
    from isd_service import create_app

    cli = FlaskGroup(create_app=lambda: create_app(), add_default_commands=False,
                     add_version_option=False, load_dotenv=False)
    cli(prog_name="isd")
