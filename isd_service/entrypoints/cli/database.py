"""`isd db upgrade` and `isd seed`: the schema, the seed catalogue and the seed data."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import click
from alembic.config import Config
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import inspect

from isd_service.adapters import repository
from isd_service.config import PROJECT_ROOT
from isd_service.domain.errors import DomainError
from isd_service.domain.formats import InputFile
from isd_service.entrypoints.cli import fail, refused
from isd_service.entrypoints.cli.drafts import input_files
from isd_service.entrypoints.flask_db import new_uow, uow
from isd_service.service_layer import catalogue, drafts, publishing

MIGRATIONS = PROJECT_ROOT / "migrations"
SEED_DATA = PROJECT_ROOT / "seed_data"


@click.group("db")
def db_group() -> None:
    """Manage the database schema."""


def alembic_config(url: str) -> Config:
    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["url"] = url
    return cfg


def upgrade_database(app: Flask) -> list[str]:
    """Bring the schema to head and the working catalogue up to the seed catalogue: an empty
    one gets all of it, another the seed entities it lacks (new MDD files, say). Return the
    ids of the entities added."""
    from alembic import command

    command.upgrade(alembic_config(app.config["DATABASE_URL"]), "head")
    with new_uow(app) as unit:
        return catalogue.add_missing(unit, seed_catalogue(), actor="upgrade",
                                     organisation=app.config["ADMIN_ORG"])


def seed_catalogue() -> list[dict[str, Any]]:
    return catalogue.read_catalogue_file(SEED_DATA / "catalogue.json")


@db_group.command("upgrade")
@with_appcontext
def db_upgrade() -> None:
    """Apply migrations; the working catalogue gets the seed catalogue's entities it lacks."""
    added = upgrade_database(current_app._get_current_object())  # type: ignore[attr-defined]
    if not added:
        click.echo("database is up to date")
    elif len(added) == len(seed_catalogue()):
        click.echo("database is up to date (seed catalogue installed)")
    else:
        click.echo(f"database is up to date (added to the catalogue: {', '.join(added)})")


def seed_dir(app: Flask) -> Path:
    return Path(app.config.get("SEED_DIR") or SEED_DATA)


def seed_number(mdd: list[InputFile]) -> int:
    """The version the seed's MDD files are (their names end in _<number>), else 1."""
    for f in mdd:
        if match := re.search(r"_([0-9]{1,9})\.(csv|zip)$", f.name, re.IGNORECASE):
            return int(match.group(1))
    return 1


@click.command("seed")
@click.option("--version", type=click.IntRange(1, 2**31 - 1),
              help="the version to publish [default: the seed's MDD version, else 1]")
@click.option("--if-empty", is_flag=True,
              help="do nothing (and succeed) when versions are already published")
@with_appcontext
def seed_command(version: int | None, if_empty: bool) -> None:
    """Load the seed data into an empty database and publish it; prints the version.

    The seed (ISD_SEED_DIR, default seed_data/) is a real MDD version in mdd/ (the portal's
    files or zip) and the ISD-only records in records/ (CSV by entity id).
    """
    unit = uow()
    db = unit.session
    if not inspect(db.get_bind()).has_table("version"):
        fail("the database has no schema: run `isd db upgrade` first")
    latest = repository.latest_version(db)
    if latest is not None and if_empty:
        click.echo(f"versions are already published; the latest is {latest.number}")
        return
    if latest is not None:
        fail("the database already has published versions; seed only an empty one")
    if repository.has_loads(db):
        fail("the draft already has loads in it; seed only an empty database")
    folder = seed_dir(current_app._get_current_object())  # type: ignore[attr-defined]
    mdd = input_files((str(folder / "mdd"),), "mdd-csv") if (folder / "mdd").is_dir() else []
    records = (input_files((str(folder / "records"),), "csv")
               if (folder / "records").is_dir() else [])
    if not mdd and not records:
        fail(f"{folder} holds no seed data (mdd/ or records/)")
    admin = current_app.config["ADMIN_ORG"]
    try:
        for files, fmt in ((mdd, "mdd-csv"), (records, "csv")):
            if files:
                drafts.load(unit, files=files, fmt=fmt, mode="replace", actor="seed",
                            organisation=admin)
        row = publishing.publish(unit, actor="seed", organisation=admin,
                                 version=version or seed_number(mdd),
                                 go_live_date=date.today())
    except DomainError as exc:
        refused(exc, "the seed data was refused")
    click.echo(f"seed data published: {row.record_count} records")
    click.echo(str(row.number))
